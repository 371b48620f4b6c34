//! `hanzo-db demo`: the README's main job. Creates a table, inserts sample
//! multimodal records (text, small PPM images and WAV clips it generates),
//! builds indexes, and runs vector, filtered and hybrid searches.

use std::f32::consts::PI;

use hanzo_db::{Blob, DistanceMetric, FieldType, IndexSpec, MultimodalRecord, TableSchema};
use serde_json::{Value, json};

use super::Ctx;
use super::search::hit_json;
use crate::output::{clip, table};

const DIM: usize = 64;

/// A small deterministic text embedding (hashed words and character
/// trigrams, L2-normalised) so the demo needs no model download.
pub fn embed(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; DIM];
    let lower = text.to_lowercase();
    let mut add = |token: &str, w: f32| {
        let h = token.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        });
        let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
        v[(h % DIM as u64) as usize] += sign * w;
    };
    for word in lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2)
    {
        add(word, 1.0);
        let chars: Vec<char> = word.chars().collect();
        for t in chars.windows(3) {
            add(&t.iter().collect::<String>(), 0.3);
        }
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    v.iter().map(|x| x / norm).collect()
}

/// A tiny binary PPM image filled with one colour.
fn ppm(rgb: [u8; 3]) -> Vec<u8> {
    let mut out = b"P6\n8 8\n255\n".to_vec();
    for _ in 0..64 {
        out.extend_from_slice(&rgb);
    }
    out
}

/// A 0.1 s mono 8 kHz 16-bit WAV tone.
fn wav(freq: f32) -> Vec<u8> {
    let samples: Vec<i16> = (0..800)
        .map(|i| ((2.0 * PI * freq * i as f32 / 8000.0).sin() * 12000.0) as i16)
        .collect();
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&16000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

const SAMPLES: &[(&str, &str, i64, [u8; 3])] = &[
    (
        "a red bicycle leaning against a brick wall",
        "vehicles",
        2021,
        [200, 30, 30],
    ),
    (
        "a fast red sports car on a mountain road",
        "vehicles",
        2023,
        [220, 20, 20],
    ),
    (
        "an old blue bicycle with a wicker basket",
        "vehicles",
        2018,
        [30, 30, 200],
    ),
    (
        "a yellow school bus stopped at a corner",
        "vehicles",
        2019,
        [240, 220, 20],
    ),
    (
        "a sailing boat on a calm blue lake",
        "vehicles",
        2022,
        [40, 90, 200],
    ),
    (
        "a ginger cat asleep on a sunny windowsill",
        "animals",
        2020,
        [230, 140, 40],
    ),
    (
        "a black cat chasing a red ball of yarn",
        "animals",
        2024,
        [20, 20, 20],
    ),
    (
        "a golden retriever puppy playing in snow",
        "animals",
        2021,
        [220, 180, 90],
    ),
    (
        "a flock of geese flying over a wheat field",
        "animals",
        2017,
        [180, 170, 120],
    ),
    (
        "a red fox crossing a frozen river at dawn",
        "animals",
        2023,
        [200, 90, 30],
    ),
    (
        "a bowl of ramen with a soft boiled egg",
        "food",
        2022,
        [210, 170, 110],
    ),
    (
        "fresh red strawberries in a wooden basket",
        "food",
        2020,
        [210, 30, 50],
    ),
    (
        "a stack of pancakes with maple syrup",
        "food",
        2019,
        [200, 150, 80],
    ),
    (
        "a green salad with avocado and lime",
        "food",
        2024,
        [60, 170, 60],
    ),
    (
        "a thunderstorm over the city skyline at night",
        "nature",
        2021,
        [60, 60, 90],
    ),
    (
        "cherry blossoms along a quiet river path",
        "nature",
        2023,
        [240, 180, 200],
    ),
    (
        "a desert canyon glowing red at sunset",
        "nature",
        2018,
        [200, 80, 40],
    ),
    (
        "a pine forest covered in fresh snow",
        "nature",
        2022,
        [230, 240, 240],
    ),
];

pub async fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let db = &ctx.db;
    let name = "demo_media";
    if db.list_tables().await?.iter().any(|t| t == name) {
        db.drop_table(name).await?;
    }
    let schema = TableSchema::new(DIM)
        .metric(DistanceMetric::Cosine)
        .field("category", FieldType::String)
        .field("year", FieldType::Int);
    db.create_table(name, schema).await?;
    let records: Vec<MultimodalRecord> = SAMPLES
        .iter()
        .enumerate()
        .map(|(i, (text, cat, year, rgb))| {
            let mut r = MultimodalRecord::new(format!("item-{i:02}"), embed(text))
                .with_text(*text)
                .with_image(ppm(*rgb))
                .with_audio(wav(220.0 + 40.0 * i as f32))
                .with_metadata("category", *cat)
                .with_metadata("year", *year)
                .with_metadata(
                    "source",
                    json!({"camera": if i % 2 == 0 { "phone" } else { "dslr" }, "frame": i}),
                );
            if i % 5 == 0 {
                r = r.with_blob(Blob::new(
                    "model/gltf-binary",
                    format!("glTF-demo-{i}").into_bytes(),
                ));
            }
            r
        })
        .collect();
    let blob_bytes: usize = records
        .iter()
        .map(|r| {
            r.image.as_ref().map_or(0, Vec::len)
                + r.audio.as_ref().map_or(0, Vec::len)
                + r.blobs.iter().map(|b| b.data.len()).sum::<usize>()
        })
        .sum();
    db.insert(name, records).await?;
    ctx.out.note(format!(
        "created table {name} at {} and inserted {} records (text, 8x8 PPM images, WAV clips, {} bytes of media)",
        db.config().path.display(),
        SAMPLES.len(),
        blob_bytes
    ));

    for spec in [
        IndexSpec::Auto,
        IndexSpec::FullText,
        IndexSpec::Scalar {
            column: "category".into(),
        },
    ] {
        db.create_index(name, spec).await?;
    }
    let indexes = db.list_indexes(name).await?;
    ctx.out.note(format!(
        "built indexes: {}",
        indexes
            .iter()
            .map(|i| format!("{} on {}", i.kind, i.columns.join(",")))
            .collect::<Vec<_>>()
            .join(", ")
    ));

    let query = "red bicycle";
    let vector_hits = db.search(name).vector(embed(query)).k(3).execute().await?;
    let filter = json!({"category": "animals", "year": {"$gte": 2021}});
    let filtered_hits = db
        .search(name)
        .vector(embed("a cat playing"))
        .filter(filter.clone())
        .k(3)
        .execute()
        .await?;
    let hybrid_hits = db
        .search(name)
        .vector(embed("red fruit"))
        .text("strawberries")
        .k(3)
        .execute()
        .await?;
    let security = db.security_status()?;
    let roundtrip = db
        .get(name, "item-00")
        .await?
        .ok_or_else(|| anyhow::anyhow!("item-00 missing"))?;
    let image_ok = roundtrip.image.as_deref() == Some(ppm(SAMPLES[0].3).as_slice());

    let section = |title: &str, hits: &[hanzo_db::SearchHit]| -> String {
        let rows: Vec<Vec<String>> = hits
            .iter()
            .map(|h| {
                vec![
                    h.record.id.clone(),
                    h.distance.map_or("-".into(), |d| format!("{d:.3}")),
                    h.score.map_or("-".into(), |s| format!("{s:.4}")),
                    clip(h.record.text.as_deref().unwrap_or(""), 46),
                    h.record
                        .metadata
                        .get("category")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    h.record
                        .metadata
                        .get("year")
                        .map(|v| v.to_string())
                        .unwrap_or_default(),
                ]
            })
            .collect();
        format!(
            "{title}\n{}\n",
            table(
                &["ID", "DISTANCE", "SCORE", "TEXT", "CATEGORY", "YEAR"],
                &rows
            )
        )
    };
    let doc = json!({
        "table": name,
        "records": SAMPLES.len(),
        "indexes": indexes,
        "vector_search": {"query": query, "results": vector_hits.iter().map(hit_json).collect::<Vec<_>>()},
        "filtered_search": {"query": "a cat playing", "filter": filter, "results": filtered_hits.iter().map(hit_json).collect::<Vec<_>>()},
        "hybrid_search": {"vector_query": "red fruit", "text_query": "strawberries", "results": hybrid_hits.iter().map(hit_json).collect::<Vec<_>>()},
        "image_round_trip_byte_exact": image_ok,
        "security": {
            "is_encrypted": security.is_encrypted,
            "cipher": security.cipher,
            "key_provider": security.key_provider,
            "effective_tier": security.effective,
        },
    });
    ctx.out.emit(&doc, || {
        [
            section(&format!("Vector search for \"{query}\":"), &vector_hits),
            section(
                &format!("Filtered search for \"a cat playing\" where {filter}:"),
                &filtered_hits,
            ),
            section(
                "Hybrid search: vector \"red fruit\" + full text \"strawberries\" (rank fusion):",
                &hybrid_hits,
            ),
            format!(
                "Image of item-00 read back byte-exact: {}",
                if image_ok { "yes" } else { "NO" }
            ),
            format!(
                "Encrypted at rest: {} ({}, key: {} {}); confidential-computing tier: {:?}",
                if security.is_encrypted { "yes" } else { "no" },
                security.cipher,
                security.key_provider.kind,
                security.key_provider.location.clone().unwrap_or_default(),
                security.effective
            ),
        ]
        .join("\n")
    });
    anyhow::ensure!(image_ok, "the image read back differs from the one written");
    Ok(())
}
