//! Key management: providers, keyring, rotation, damage.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use hanzo_db::security::keys::{
    Argon2Params, EnvKeyProvider, KeyError, KeyFileProvider, KeyProvider, KeyState, Keyring,
    PassphraseProvider, RetireConfirmation,
};
use serde_json::Value;

fn pass(p: &str) -> Box<dyn KeyProvider> {
    Box::new(PassphraseProvider::with_params(p, Argon2Params::INSECURE_TEST).unwrap())
}

fn env_provider(value: &str) -> Box<dyn KeyProvider> {
    let v = value.to_string();
    Box::new(EnvKeyProvider::from_env_with("HANZO_TEST_KEY", move |_| Some(v)).unwrap())
}

const ENV_KEY_A: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const ENV_KEY_B: &str = "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1eff";

fn ring_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("keyring.json")
}

fn edit_json(path: &Path, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
    f(&mut v);
    fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
fn set_mode(path: &Path, m: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(m)).unwrap();
}

// ---------------------------------------------------------------- create / open

#[test]
fn passphrase_create_then_open_returns_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = ring_path(&dir);
    let (ring, dek) = Keyring::create(&path, pass("correct horse")).unwrap();
    let (id, cur) = ring.current();
    assert_eq!(cur.as_bytes(), dek.as_bytes());
    drop(ring);

    let ring = Keyring::open(&path, pass("correct horse")).unwrap();
    let (id2, cur2) = ring.current();
    assert_eq!(id, id2);
    assert_eq!(cur2.as_bytes(), dek.as_bytes());
    assert_eq!(ring.get(&id).unwrap().as_bytes(), dek.as_bytes());
    assert_eq!(ring.provider_info().kind, "passphrase");
}

#[test]
fn passphrase_default_params_are_rfc9106_second_option_and_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = ring_path(&dir);
    let p = PassphraseProvider::new("pw").unwrap();
    assert_eq!(p.argon2_params(), Argon2Params::RFC9106_SECOND);
    let (_ring, dek) = Keyring::create(&path, Box::new(p)).unwrap();
    let v: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    let params = &v["provider"]["params"];
    assert_eq!(v["provider"]["kind"], "passphrase");
    assert_eq!(params["kdf"], "argon2id");
    assert_eq!(params["m_cost_kib"], 65536);
    assert_eq!(params["t_cost"], 3);
    assert_eq!(params["p_cost"], 4);
    assert_eq!(params["salt"].as_str().unwrap().len(), 32);
    // Opening with a provider built with other params adopts the stored ones.
    let ring = Keyring::open(&path, pass("pw")).unwrap();
    assert_eq!(ring.current().1.as_bytes(), dek.as_bytes());
}

#[test]
fn env_provider_create_open_hex_and_base64() {
    let dir = tempfile::tempdir().unwrap();
    let path = ring_path(&dir);
    let (_r, dek) = Keyring::create(&path, env_provider(ENV_KEY_A)).unwrap();
    let raw = hex::decode(ENV_KEY_A).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
    let ring = Keyring::open(&path, env_provider(&b64)).unwrap();
    assert_eq!(ring.current().1.as_bytes(), dek.as_bytes());
    assert_eq!(
        ring.provider_info().location.as_deref(),
        Some("env:HANZO_TEST_KEY")
    );
}

#[test]
fn env_provider_missing_or_bad_material() {
    let err = EnvKeyProvider::from_env("HANZO_KEYS_TEST_VARIABLE_THAT_IS_NOT_SET").unwrap_err();
    assert!(matches!(err, KeyError::MissingEnv { .. }), "{err}");
    let err = EnvKeyProvider::from_env_with("V", |_| Some("abcd".into())).unwrap_err();
    assert!(matches!(err, KeyError::InvalidKeyMaterial { .. }), "{err}");
    // 16 bytes of hex is too short.
    let err = EnvKeyProvider::from_env_with("V", |_| Some(hex::encode([1u8; 16]))).unwrap_err();
    assert!(matches!(err, KeyError::InvalidKeyMaterial { .. }), "{err}");
    assert!(!err.to_string().contains(&hex::encode([1u8; 16])));
}

#[cfg(unix)]
#[test]
fn key_file_create_default_is_0600_and_opens_keyring() {
    let dir = tempfile::tempdir().unwrap();
    let kf = dir.path().join("master.key");
    let p = KeyFileProvider::create_default(&kf).unwrap();
    assert_eq!(mode(&kf), 0o600);
    assert_eq!(fs::read(&kf).unwrap().len(), 32);
    let path = ring_path(&dir);
    let (_r, dek) = Keyring::create(&path, Box::new(p)).unwrap();
    let ring = Keyring::open(&path, Box::new(KeyFileProvider::open(&kf).unwrap())).unwrap();
    assert_eq!(ring.current().1.as_bytes(), dek.as_bytes());
    // No temp files left behind.
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
    // create_default never overwrites.
    let err = KeyFileProvider::create_default(&kf).unwrap_err();
    assert!(matches!(err, KeyError::AlreadyExists { .. }), "{err}");
}

#[cfg(unix)]
#[test]
fn key_file_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let kf = dir.path().join("loose.key");
    fs::write(&kf, [9u8; 32]).unwrap();
    set_mode(&kf, 0o644);
    let err = KeyFileProvider::open(&kf).unwrap_err();
    assert!(
        matches!(err, KeyError::InsecureKeyFile { mode: 0o644, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chmod 600"), "{err}");
    set_mode(&kf, 0o640);
    assert!(matches!(
        KeyFileProvider::open(&kf),
        Err(KeyError::InsecureKeyFile { .. })
    ));
    set_mode(&kf, 0o600);
    KeyFileProvider::open(&kf).unwrap();
    set_mode(&kf, 0o400);
    KeyFileProvider::open(&kf).unwrap();
}

#[cfg(unix)]
#[test]
fn key_file_accepts_hex_text_and_rejects_wrong_length() {
    let dir = tempfile::tempdir().unwrap();
    let kf = dir.path().join("hex.key");
    fs::write(&kf, format!("{ENV_KEY_A}\n")).unwrap();
    set_mode(&kf, 0o600);
    let path = ring_path(&dir);
    let (_r, dek) = Keyring::create(&path, Box::new(KeyFileProvider::open(&kf).unwrap())).unwrap();
    let ring = Keyring::open(&path, Box::new(KeyFileProvider::open(&kf).unwrap())).unwrap();
    assert_eq!(ring.current().1.as_bytes(), dek.as_bytes());

    let bad = dir.path().join("short.key");
    fs::write(&bad, [1u8; 31]).unwrap();
    set_mode(&bad, 0o600);
    assert!(matches!(
        KeyFileProvider::open(&bad),
        Err(KeyError::InvalidKeyMaterial { .. })
    ));
}

#[test]
fn create_refuses_existing_keyring() {
    let dir = tempfile::tempdir().unwrap();
    let path = ring_path(&dir);
    Keyring::create(&path, pass("a")).unwrap();
    let err = Keyring::create(&path, pass("a")).unwrap_err();
    assert!(matches!(err, KeyError::AlreadyExists { .. }), "{err}");
}

#[cfg(unix)]
#[test]
fn keyring_file_is_0600_and_holds_no_plaintext_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = ring_path(&dir);
    let (_r, dek) = Keyring::create(&path, pass("a")).unwrap();
    assert_eq!(mode(&path), 0o600);
    let text = fs::read_to_string(&path).unwrap();
    assert!(!text.contains(&hex::encode(dek.as_bytes())));
    assert!(!text.contains(&base64::engine::general_purpose::STANDARD.encode(dek.as_bytes())));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["format"], "hanzo-keyring");
    assert_eq!(v["version"], 1);
    assert_eq!(v["entries"][0]["state"], "active");
    assert_eq!(v["entries"][0]["key_id"].as_str().unwrap().len(), 32);
    assert!(v["mac"].as_str().is_some());
}

// ---------------------------------------------------------------- wrong key

#[test]
fn wrong_passphrase_is_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = ring_path(&dir);
    Keyring::create(&path, pass("right")).unwrap();
    let err = Keyring::open(&path, pass("wrong")).unwrap_err();
    assert!(matches!(err, KeyError::WrongKey { .. }), "{err}");
    assert!(err.to_string().contains("wrong passphrase"), "{err}");
}

#[test]
fn wrong_env_key_is_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = ring_path(&dir);
    Keyring::create(&path, env_provider(ENV_KEY_A)).unwrap();
    let err = Keyring::open(&path, env_provider(ENV_KEY_B)).unwrap_err();
    assert!(matches!(err, KeyError::WrongKey { .. }), "{err}");
}

#[cfg(unix)]
#[test]
fn wrong_key_file_is_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = ring_path(&dir);
    let a = KeyFileProvider::create_default(dir.path().join("a.key")).unwrap();
    let b = KeyFileProvider::create_default(dir.path().join("b.key")).unwrap();
    Keyring::create(&path, Box::new(a)).unwrap();
    let err = Keyring::open(&path, Box::new(b)).unwrap_err();
    assert!(matches!(err, KeyError::WrongKey { .. }), "{err}");
}

#[test]
fn other_provider_kind_is_provider_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let path = ring_path(&dir);
    Keyring::create(&path, pass("a")).unwrap();
    let err = Keyring::open(&path, env_provider(ENV_KEY_A)).unwrap_err();
    assert!(
        matches!(&err, KeyError::ProviderMismatch { stored, given } if stored == "passphrase" && given == "env"),
        "{err}"
    );
}

// ---------------------------------------------------------------- damaged files

#[test]
fn missing_keyring_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let err = Keyring::open(dir.path().join("nope.json"), pass("a")).unwrap_err();
    assert!(matches!(err, KeyError::NotFound { .. }), "{err}");
}

#[test]
fn truncated_and_empty_keyring_are_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let path = ring_path(&dir);
    Keyring::create(&path, pass("a")).unwrap();
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = Keyring::open(&path, pass("a")).unwrap_err();
    assert!(matches!(err, KeyError::Truncated { .. }), "{err}");
    fs::write(&path, b"").unwrap();
    let err = Keyring::open(&path, pass("a")).unwrap_err();
    assert!(matches!(err, KeyError::Truncated { .. }), "{err}");
}

#[test]
fn garbage_and_foreign_json_are_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let path = ring_path(&dir);
    fs::write(&path, b"this is not json").unwrap();
    assert!(matches!(
        Keyring::open(&path, pass("a")),
        Err(KeyError::Malformed { .. })
    ));
    fs::write(&path, br#"{"format":"something-else","version":1}"#).unwrap();
    assert!(matches!(
        Keyring::open(&path, pass("a")),
        Err(KeyError::Malformed { .. })
    ));
    fs::write(&path, br#"[1,2,3]"#).unwrap();
    assert!(matches!(
        Keyring::open(&path, pass("a")),
        Err(KeyError::Malformed { .. })
    ));
}

#[test]
fn bumped_version_is_unsupported_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = ring_path(&dir);
    Keyring::create(&path, pass("a")).unwrap();
    edit_json(&path, |v| v["version"] = 2.into());
    let err = Keyring::open(&path, pass("a")).unwrap_err();
    assert!(
        matches!(
            err,
            KeyError::UnsupportedVersion {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{err}"
    );
}

fn flip_wrapped_byte(path: &Path, entry: usize, index: usize) {
    edit_json(path, |v| {
        let e = &mut v["entries"][entry]["wrapped_dek"];
        let mut blob = base64::engine::general_purpose::STANDARD
            .decode(e.as_str().unwrap())
            .unwrap();
        blob[index] ^= 0x01;
        *e = base64::engine::general_purpose::STANDARD
            .encode(blob)
            .into();
    });
}

#[test]
fn flipped_wrapped_ciphertext_is_corrupt_not_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = ring_path(&dir);
    Keyring::create(&path, pass("a")).unwrap();
    flip_wrapped_byte(&path, 0, 30); // inside the ciphertext
    let err = Keyring::open(&path, pass("a")).unwrap_err();
    assert!(matches!(err, KeyError::Corrupt { .. }), "{err}");
}

#[test]
fn flipped_key_check_of_one_entry_among_several_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = ring_path(&dir);
    let (mut ring, _) = Keyring::create(&path, pass("a")).unwrap();
    ring.rotate_dek().unwrap();
    drop(ring);
    flip_wrapped_byte(&path, 0, 2); // inside the 8-byte key check
    let err = Keyring::open(&path, pass("a")).unwrap_err();
    assert!(matches!(err, KeyError::Corrupt { .. }), "{err}");
}

#[test]
fn truncated_wrapped_blob_and_bad_base64_are_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = ring_path(&dir);
    Keyring::create(&path, pass("a")).unwrap();
    let orig = fs::read(&path).unwrap();
    edit_json(&path, |v| v["entries"][0]["wrapped_dek"] = "AAAA".into());
    assert!(matches!(
        Keyring::open(&path, pass("a")),
        Err(KeyError::Corrupt { .. })
    ));
    fs::write(&path, &orig).unwrap();
    edit_json(&path, |v| {
        v["entries"][0]["wrapped_dek"] = "!!not base64!!".into()
    });
    assert!(matches!(
        Keyring::open(&path, pass("a")),
        Err(KeyError::Corrupt { .. })
    ));
}

#[test]
fn edited_metadata_is_tampered() {
    let dir = tempfile::tempdir().unwrap();
    let path = ring_path(&dir);
    let (mut ring, _) = Keyring::create(&path, pass("a")).unwrap();
    ring.rotate_dek().unwrap();
    drop(ring);
    let orig = fs::read(&path).unwrap();

    edit_json(&path, |v| v["entries"][0]["created_at"] = 1.into());
    let err = Keyring::open(&path, pass("a")).unwrap_err();
    assert!(matches!(err, KeyError::Tampered { .. }), "{err}");

    // Swap which key is active.
    fs::write(&path, &orig).unwrap();
    edit_json(&path, |v| {
        v["entries"][0]["state"] = "active".into();
        v["entries"][1]["state"] = "retired".into();
    });
    let err = Keyring::open(&path, pass("a")).unwrap_err();
    assert!(matches!(err, KeyError::Tampered { .. }), "{err}");

    // Removed MAC.
    fs::write(&path, &orig).unwrap();
    edit_json(&path, |v| {
        v.as_object_mut().unwrap().remove("mac");
    });
    let err = Keyring::open(&path, pass("a")).unwrap_err();
    assert!(matches!(err, KeyError::Tampered { .. }), "{err}");

    // Original still opens.
    fs::write(&path, &orig).unwrap();
    Keyring::open(&path, pass("a")).unwrap();
}

#[test]
fn changed_keyring_id_or_two_active_keys_fail() {
    let dir = tempfile::tempdir().unwrap();
    let path = ring_path(&dir);
    let (mut ring, _) = Keyring::create(&path, pass("a")).unwrap();
    ring.rotate_dek().unwrap();
    drop(ring);
    let orig = fs::read(&path).unwrap();
    // keyring id is bound into every wrapped key's AAD.
    edit_json(&path, |v| v["keyring_id"] = "00".repeat(16).into());
    assert!(matches!(
        Keyring::open(&path, pass("a")),
        Err(KeyError::Corrupt { .. })
    ));
    fs::write(&path, &orig).unwrap();
    edit_json(&path, |v| v["entries"][0]["state"] = "active".into());
    assert!(matches!(
        Keyring::open(&path, pass("a")),
        Err(KeyError::Corrupt { .. })
    ));
}

#[test]
fn edited_argon2_salt_is_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = ring_path(&dir);
    Keyring::create(&path, pass("a")).unwrap();
    edit_json(&path, |v| {
        v["provider"]["params"]["salt"] = "11".repeat(16).into()
    });
    assert!(matches!(
        Keyring::open(&path, pass("a")),
        Err(KeyError::WrongKey { .. })
    ));
    edit_json(&path, |v| v["provider"]["params"]["m_cost_kib"] = 1.into());
    assert!(matches!(
        Keyring::open(&path, pass("a")),
        Err(KeyError::InvalidParams { .. })
    ));
}

// ---------------------------------------------------------------- rotation

#[test]
fn kek_rotation_new_provider_opens_old_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = ring_path(&dir);
    let (mut ring, dek) = Keyring::create(&path, pass("old")).unwrap();
    let (id, _) = ring.current();
    ring.rotate_kek(pass("new")).unwrap();
    // In-memory keys unchanged.
    assert_eq!(ring.current().1.as_bytes(), dek.as_bytes());
    drop(ring);

    let ring = Keyring::open(&path, pass("new")).unwrap();
    assert_eq!(ring.current().0, id);
    assert_eq!(ring.current().1.as_bytes(), dek.as_bytes());
    let err = Keyring::open(&path, pass("old")).unwrap_err();
    assert!(matches!(err, KeyError::WrongKey { .. }), "{err}");
}

#[cfg(unix)]
#[test]
fn kek_rotation_across_provider_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let path = ring_path(&dir);
    let (mut ring, dek) = Keyring::create(&path, pass("old")).unwrap();
    let kf = dir.path().join("k.key");
    ring.rotate_kek(Box::new(KeyFileProvider::create_default(&kf).unwrap()))
        .unwrap();
    drop(ring);
    let ring = Keyring::open(&path, Box::new(KeyFileProvider::open(&kf).unwrap())).unwrap();
    assert_eq!(ring.current().1.as_bytes(), dek.as_bytes());
    assert!(matches!(
        Keyring::open(&path, pass("old")),
        Err(KeyError::ProviderMismatch { .. })
    ));
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
}

#[test]
fn dek_rotation_keeps_old_key_readable_and_retire_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = ring_path(&dir);
    let (mut ring, first) = Keyring::create(&path, pass("a")).unwrap();
    let (old_id, _) = ring.current();
    let new_id = ring.rotate_dek().unwrap();
    assert_ne!(old_id, new_id);
    let (cur_id, cur) = ring.current();
    assert_eq!(cur_id, new_id);
    assert_ne!(cur.as_bytes(), first.as_bytes());
    assert_eq!(ring.get(&old_id).unwrap().as_bytes(), first.as_bytes());
    let states: Vec<_> = ring.entries().iter().map(|e| e.state).collect();
    assert_eq!(states, vec![KeyState::Retired, KeyState::Active]);
    drop(ring);

    let mut ring = Keyring::open(&path, pass("a")).unwrap();
    assert_eq!(ring.current().0, new_id);
    assert_eq!(ring.get(&old_id).unwrap().as_bytes(), first.as_bytes());

    // The active key cannot be removed; unknown ids are reported.
    assert!(matches!(
        ring.retire(&new_id, RetireConfirmation::NothingReferencesThisKey),
        Err(KeyError::ActiveKey { .. })
    ));
    assert!(matches!(
        ring.retire(
            &hanzo_db::security::keys::KeyId([0; 16]),
            RetireConfirmation::NothingReferencesThisKey
        ),
        Err(KeyError::KeyNotFound { .. })
    ));
    ring.retire(&old_id, RetireConfirmation::NothingReferencesThisKey)
        .unwrap();
    assert!(ring.get(&old_id).is_none());
    drop(ring);
    let ring = Keyring::open(&path, pass("a")).unwrap();
    assert!(ring.get(&old_id).is_none());
    assert_eq!(ring.entries().len(), 1);
}

// ---------------------------------------------------------------- hygiene

#[cfg(unix)]
#[test]
fn debug_output_never_contains_key_material() {
    let dir = tempfile::tempdir().unwrap();
    let path = ring_path(&dir);
    let kf = dir.path().join("k.key");
    let file_provider = KeyFileProvider::create_default(&kf).unwrap();
    let file_key = fs::read(&kf).unwrap();
    let env = EnvKeyProvider::from_env_with("HANZO_TEST_KEY", |_| Some(ENV_KEY_A.into())).unwrap();
    let pp =
        PassphraseProvider::with_params("hunter2-secret", Argon2Params::INSECURE_TEST).unwrap();
    let (ring, dek) = Keyring::create(&path, Box::new(pp)).unwrap();
    let pp2 =
        PassphraseProvider::with_params("hunter2-secret", Argon2Params::INSECURE_TEST).unwrap();

    let dek_hex = hex::encode(dek.as_bytes());
    let dek_dec = format!("{:?}", dek.as_bytes());
    let file_hex = hex::encode(&file_key);
    let file_dec = format!("{:?}", &file_key[..]);
    let env_dec = format!("{:?}", hex::decode(ENV_KEY_A).unwrap());
    let outputs = [
        format!("{dek:?}"),
        format!("{dek:#?}"),
        format!("{ring:?}"),
        format!("{ring:#?}"),
        format!("{file_provider:?}"),
        format!("{env:?}"),
        format!("{pp2:?}"),
        format!("{:?}", ring.provider_info()),
        format!("{:?}", env.describe()),
    ];
    for out in &outputs {
        for secret in [
            dek_hex.as_str(),
            dek_dec.as_str(),
            file_hex.as_str(),
            file_dec.as_str(),
            ENV_KEY_A,
            env_dec.as_str(),
            "hunter2-secret",
        ] {
            assert!(!out.contains(secret), "{out} leaks {secret}");
        }
    }
    assert!(format!("{dek:?}").contains("redacted"));
}

#[test]
fn data_keys_report_memory_locking() {
    let dir = tempfile::tempdir().unwrap();
    let path = ring_path(&dir);
    let (ring, dek) = Keyring::create(&path, pass("a")).unwrap();
    // Either locked, or the reason is recorded — never silently unlocked.
    assert!(dek.is_memory_locked() || dek.memory_lock_error().is_some());
    assert_eq!(ring.memory_locked(), dek.is_memory_locked());
    eprintln!(
        "memory locked: {} ({:?})",
        dek.is_memory_locked(),
        dek.memory_lock_error()
    );
}

#[test]
fn derived_file_keys_differ_per_salt() {
    let k = hanzo_db::security::keys::DataKey::generate();
    let a = k.derive(b"salt-1", b"hanzo-db/file");
    let b = k.derive(b"salt-2", b"hanzo-db/file");
    assert_ne!(a.as_bytes(), b.as_bytes());
}

mod hardening {

    use hanzo_db::security::tee::harden_process;

    #[cfg(target_os = "linux")]
    #[test]
    fn harden_process_disables_core_dumps() {
        let r = harden_process();
        eprintln!("{r:?}");
        assert!(r.core_dumps_disabled, "{r:?}");
        assert!(r.core_rlimit_zero, "{r:?}");
        let (soft, hard) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_CORE).unwrap();
        assert_eq!((soft, hard), (0, 0));
        assert!(r.not_dumpable, "{r:?}");
        assert!(!nix::sys::prctl::get_dumpable().unwrap());
        // Idempotent.
        assert!(harden_process().core_dumps_disabled);
    }
}

mod memlock {

    use hanzo_db::security::keys::DataKey;

    /// Whether this process holds CAP_IPC_LOCK (which bypasses RLIMIT_MEMLOCK).
    fn has_cap_ipc_lock() -> bool {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
            .is_some_and(|caps| caps & (1 << 14) != 0)
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn mlock_refusal_is_recorded_not_fatal() {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        let (_, hard) = getrlimit(Resource::RLIMIT_MEMLOCK).unwrap();
        setrlimit(Resource::RLIMIT_MEMLOCK, 0, hard).unwrap();
        let k = DataKey::generate();
        eprintln!(
            "locked={} error={:?}",
            k.is_memory_locked(),
            k.memory_lock_error()
        );
        if has_cap_ipc_lock() {
            // Root / CAP_IPC_LOCK ignores the limit.
            assert!(k.is_memory_locked());
        } else {
            assert!(!k.is_memory_locked());
            assert!(k.memory_lock_error().unwrap().contains("mlock"));
        }
        // The key is usable either way.
        assert_eq!(k.as_bytes().len(), 32);
        let _ = format!("{k:?}");
    }
}
