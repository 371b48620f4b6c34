//! NumPy `.npy` float matrices (`<f4` or `<f8`, C order, 2-D), read a row at a time.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use hanzo_db::MultimodalRecord;

use super::{Next, ReadError, RecordSource};

/// The header facts of an `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyHeader {
    pub rows: usize,
    pub cols: usize,
    pub f64: bool,
    pub header_len: usize,
}

/// Parses the header from the start of a file.
pub fn read_header(r: &mut impl Read) -> anyhow::Result<NpyHeader> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)?;
    anyhow::ensure!(&magic[..6] == b"\x93NUMPY", "not a .npy file (bad magic)");
    let (len, pre) = if magic[6] == 1 {
        let mut b = [0u8; 2];
        r.read_exact(&mut b)?;
        (u16::from_le_bytes(b) as usize, 10)
    } else {
        let mut b = [0u8; 4];
        r.read_exact(&mut b)?;
        (u32::from_le_bytes(b) as usize, 12)
    };
    let mut text = vec![0u8; len];
    r.read_exact(&mut text)?;
    let text = String::from_utf8_lossy(&text);
    let f64 = if text.contains("'<f4'") {
        false
    } else if text.contains("'<f8'") {
        true
    } else {
        anyhow::bail!(
            ".npy dtype must be little-endian float32 or float64 ('<f4' or '<f8'): {text}"
        )
    };
    anyhow::ensure!(
        text.contains("'fortran_order': False"),
        ".npy must be in C order"
    );
    let shape = text
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .map(|s| s.trim().trim_start_matches('('))
        .ok_or_else(|| anyhow::anyhow!(".npy header has no shape: {text}"))?;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| anyhow::anyhow!("bad .npy shape `{shape}`"))
        })
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(
        dims.len() == 2,
        ".npy must be a 2-D matrix, got shape ({shape})"
    );
    Ok(NpyHeader {
        rows: dims[0],
        cols: dims[1],
        f64,
        header_len: pre + len,
    })
}

/// Streams rows of an `.npy` matrix as records with ids from a file or row numbers.
pub struct NpyReader {
    input: BufReader<File>,
    header: NpyHeader,
    ids: Option<std::io::Lines<BufReader<File>>>,
    row: usize,
    buf: Vec<u8>,
}

impl NpyReader {
    pub fn open(path: &Path, ids: Option<&Path>) -> anyhow::Result<Self> {
        let f =
            File::open(path).map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        let mut input = BufReader::with_capacity(1 << 20, f);
        let header = read_header(&mut input)?;
        let ids = match ids {
            Some(p) => Some(
                BufReader::new(
                    File::open(p)
                        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", p.display()))?,
                )
                .lines(),
            ),
            None => None,
        };
        let width = if header.f64 { 8 } else { 4 };
        let buf = vec![0u8; header.cols * width];
        Ok(Self {
            input,
            header,
            ids,
            row: 0,
            buf,
        })
    }
    pub fn header(&self) -> &NpyHeader {
        &self.header
    }
}

impl RecordSource for NpyReader {
    fn next_record(&mut self) -> Option<Next> {
        if self.row >= self.header.rows {
            return None;
        }
        let at = format!("row {}", self.row);
        if let Err(e) = self.input.read_exact(&mut self.buf) {
            return Some(Err(ReadError::Fatal(anyhow::anyhow!(
                ".npy ends early at {at}: {e}"
            ))));
        }
        let vector: Vec<f32> = if self.header.f64 {
            self.buf
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8")) as f32)
                .collect()
        } else {
            self.buf
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
                .collect()
        };
        let id = match &mut self.ids {
            Some(lines) => match lines.next() {
                Some(Ok(id)) if !id.trim().is_empty() => id.trim().to_string(),
                _ => {
                    return Some(Err(ReadError::Fatal(anyhow::anyhow!(
                        "--ids file has no id for {at}"
                    ))));
                }
            },
            None => self.row.to_string(),
        };
        self.row += 1;
        Some(Ok((at, MultimodalRecord::new(id, vector))))
    }
    fn position(&self) -> u64 {
        (self.header.header_len + self.row * self.buf.len()) as u64
    }
}
