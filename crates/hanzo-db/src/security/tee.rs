//! Confidential-computing security tiers: read-only detection, tier selection with
//! graceful degradation, a status record, and process hardening.
//!
//! **Detection is not attestation.** Everything here is read locally (sysfs, configfs,
//! `/dev`, `/proc/cpuinfo`, CPUID, NVML) and proves nothing to a remote party. It is used
//! for tier selection, UX and logs. Encryption at rest stays on at every tier; keys must
//! only ever be released against a verified attestation report, which is out of scope here.
//!
//! Every probe is infallible: it returns an [`Evidence`] record (found or not, with the
//! reason), and [`detect`] never returns an error or panics. File probes read below a
//! configurable root (default `/`) so tests can build a fake tree in a temp directory.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::keys::ProviderInfo;

/// Security tier, numbered **as the hanzo-db specification names them**.
///
/// The numbering is a name, not a strength order: One (SEV-SNP) and Two (TDX) are peer
/// CPU TEEs, and the tier model in the design notes (`Tier0 None … Tier3 +GPU`) orders
/// things differently. "Highest" in this module means the largest spec number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SecurityTier {
    /// Open: no TEE; data is protected by at-rest encryption only.
    Zero,
    /// AMD SEV-SNP guest (attestable confidential VM).
    One,
    /// Intel TDX guest (trust domain).
    Two,
    /// NVIDIA Hopper (H100/H200) GPU confidential computing, CC on and ready.
    Three,
    /// NVIDIA Blackwell TEE-I/O (TDISP): GPU CC plus a CPU TEE with TEE-I/O.
    Four,
}

impl SecurityTier {
    /// All tiers in specification order.
    pub const ALL: [SecurityTier; 5] = [
        SecurityTier::Zero,
        SecurityTier::One,
        SecurityTier::Two,
        SecurityTier::Three,
        SecurityTier::Four,
    ];

    /// Human description, e.g. `"One (AMD SEV-SNP)"`.
    pub fn description(self) -> &'static str {
        match self {
            SecurityTier::Zero => "Zero (open: no TEE, at-rest encryption only)",
            SecurityTier::One => "One (AMD SEV-SNP)",
            SecurityTier::Two => "Two (Intel TDX)",
            SecurityTier::Three => "Three (NVIDIA H100 confidential computing)",
            SecurityTier::Four => "Four (NVIDIA Blackwell TEE-I/O)",
        }
    }
}

impl fmt::Display for SecurityTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// One probe result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Probe family: `sev-snp`, `sev`, `tdx`, `configfs-tsm`, `nvidia-cc`, `tee-io`.
    pub probe: String,
    /// Path (as seen under `/`) or source (`cpuid`, `nvml`, …) that was checked.
    pub path_or_source: String,
    /// Whether the signal was present.
    pub found: bool,
    /// What was seen, or why it was absent / skipped / not decisive.
    pub detail: String,
    /// The tier this signal supports when found (`None`: informational only).
    pub supports: Option<SecurityTier>,
}

impl Evidence {
    fn new(
        probe: &str,
        source: impl Into<String>,
        found: bool,
        detail: impl Into<String>,
        supports: Option<SecurityTier>,
    ) -> Self {
        Evidence {
            probe: probe.into(),
            path_or_source: source.into(),
            found,
            detail: detail.into(),
            supports: if found { supports } else { None },
        }
    }
}

// ---------------------------------------------------------------------------------------
// GPU probing
// ---------------------------------------------------------------------------------------

/// NVIDIA CC environment (`nvidia-smi conf-compute -e`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CcEnvironment {
    /// `PRODUCTION`.
    Production,
    /// `SIMULATION`.
    Simulation,
    /// CC environment unavailable (CC not supported/configured).
    Unavailable,
    /// Could not be determined.
    Unknown,
}

/// NVIDIA multi-GPU CC mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MultiGpuMode {
    /// No multi-GPU protection.
    None,
    /// Hopper protected PCIe ("PPCIe"): CC in force even when `ccFeature` reads 0.
    ProtectedPcie,
    /// Blackwell NVLink encryption.
    Nvle,
    /// Could not be determined.
    Unknown,
}

/// System-wide NVIDIA confidential-computing state as seen through NVML (or a fake).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuCcState {
    /// Number of GPUs NVML reports.
    pub gpu_count: u32,
    /// `ccFeature == ENABLED` (`None`: query failed/unsupported).
    pub cc_feature_enabled: Option<bool>,
    /// Multi-GPU protection mode.
    pub multi_gpu_mode: MultiGpuMode,
    /// CC environment.
    pub environment: CcEnvironment,
    /// GPUs ready state == accepting client requests (`None`: unknown).
    pub ready_accepting_clients: Option<bool>,
    /// CC DevTools mode (not a production security mode).
    pub dev_tools_mode: Option<bool>,
    /// TDISP / TEE-I/O state of the GPUs (`None`: not reachable).
    pub tdisp_enabled: Option<bool>,
    /// CPU capabilities as NVML reports them, free text.
    pub cpu_caps: Option<String>,
    /// Remarks from the probe (queries that failed, accessors that do not exist).
    pub notes: Vec<String>,
}

impl GpuCcState {
    /// `ccFeature == 1 || multiGpuMode ∈ {PPCIe, NVLE}` (PPCIe can read `ccFeature == 0`).
    pub fn cc_protected(&self) -> bool {
        self.cc_feature_enabled == Some(true)
            || matches!(
                self.multi_gpu_mode,
                MultiGpuMode::ProtectedPcie | MultiGpuMode::Nvle
            )
    }

    /// What is missing for tier Three (empty: qualifies).
    pub fn tier_three_gaps(&self) -> Vec<String> {
        let mut gaps = Vec::new();
        if self.gpu_count == 0 {
            gaps.push("no NVIDIA GPU".into());
        }
        if !self.cc_protected() {
            gaps.push(format!(
                "GPU CC not on (ccFeature={:?}, multiGpuMode={:?})",
                self.cc_feature_enabled, self.multi_gpu_mode
            ));
        }
        if self.environment != CcEnvironment::Production {
            gaps.push(format!(
                "CC environment is {:?}, not PRODUCTION",
                self.environment
            ));
        }
        if self.ready_accepting_clients != Some(true) {
            gaps.push(format!(
                "GPU ready state is not accepting client requests ({:?})",
                self.ready_accepting_clients
            ));
        }
        if self.dev_tools_mode == Some(true) {
            gaps.push("CC DevTools mode is on".into());
        }
        gaps
    }
}

/// Result of a GPU probe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GpuProbeOutcome {
    /// The probe could not run (e.g. NVML not installed): no GPU tier, not an error.
    Unavailable {
        /// Why.
        reason: String,
    },
    /// The probe ran and found no GPU.
    NoGpus,
    /// The probe ran and read the CC state.
    State(GpuCcState),
}

/// Source of NVIDIA CC state: [`NvmlGpuProbe`] for real hardware, [`StaticGpuProbe`] to
/// inject a fake state, [`NoGpuProbe`] to skip GPU probing.
pub trait GpuProbe: Send + Sync + fmt::Debug {
    /// Source name used in evidence (e.g. `nvml`).
    fn source(&self) -> &'static str;
    /// Reads the state. Must not panic; report failures as `Unavailable`.
    fn probe(&self) -> GpuProbeOutcome;
}

/// A probe that never finds a GPU (for callers that do not want NVML loaded).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoGpuProbe;

impl GpuProbe for NoGpuProbe {
    fn source(&self) -> &'static str {
        "none"
    }
    fn probe(&self) -> GpuProbeOutcome {
        GpuProbeOutcome::Unavailable {
            reason: "GPU probing disabled".into(),
        }
    }
}

/// A probe returning a fixed outcome (tests, or state obtained elsewhere).
#[derive(Clone, Debug)]
pub struct StaticGpuProbe(pub GpuProbeOutcome);

impl GpuProbe for StaticGpuProbe {
    fn source(&self) -> &'static str {
        "static"
    }
    fn probe(&self) -> GpuProbeOutcome {
        self.0.clone()
    }
}

/// Real probe through NVML (`nvml-wrapper`, which `dlopen`s `libnvidia-ml.so.1` at run
/// time). A missing library means [`GpuProbeOutcome::Unavailable`] ("NVML not available").
///
/// Limits of the safe `nvml-wrapper` 0.12 API, recorded in [`GpuCcState::notes`]:
/// * no NVLE accessor: when PPCIe is off, NONE and NVLE cannot be told apart (`Unknown`);
/// * no `Settings_v2`/TDISP accessor: `tdisp_enabled` is `None`;
/// * the environment is only readable combined (`CC on && PROD && ready`), so it is known
///   only when CC is on and ready; otherwise `Unknown`;
/// * `get_confidential_compute_capabilities` errors for SNP/vTOM CPU caps (3/4).
///
/// Reaching those needs the raw `nvml-wrapper-sys` bindings, i.e. `unsafe`.
#[derive(Clone, Copy, Debug, Default)]
pub struct NvmlGpuProbe;

impl GpuProbe for NvmlGpuProbe {
    fn source(&self) -> &'static str {
        "nvml"
    }

    fn probe(&self) -> GpuProbeOutcome {
        let nvml = match nvml_wrapper::Nvml::init() {
            Ok(n) => n,
            Err(e) => {
                return GpuProbeOutcome::Unavailable {
                    reason: format!("NVML not available: {e}"),
                };
            }
        };
        let count = match nvml.device_count() {
            Ok(c) => c,
            Err(e) => {
                return GpuProbeOutcome::Unavailable {
                    reason: format!("NVML device count failed: {e}"),
                };
            }
        };
        if count == 0 {
            return GpuProbeOutcome::NoGpus;
        }
        let dev = match nvml.device_by_index(0) {
            Ok(d) => d,
            Err(e) => {
                return GpuProbeOutcome::Unavailable {
                    reason: format!("NVML device 0 handle failed: {e}"),
                };
            }
        };
        let mut notes = Vec::new();
        let mut q = |name: &str, r: Result<bool, nvml_wrapper::error::NvmlError>| match r {
            Ok(v) => Some(v),
            Err(e) => {
                notes.push(format!("{name}: {e}"));
                None
            }
        };
        let cc = q("is_cc_enabled", dev.is_cc_enabled());
        let ppcie = q(
            "is_multi_gpu_protected_pcie_enabled",
            dev.is_multi_gpu_protected_pcie_enabled(),
        );
        let devtools = q("is_cc_dev_mode_enabled", dev.is_cc_dev_mode_enabled());
        let ready = q(
            "get_confidential_compute_state",
            dev.get_confidential_compute_state(),
        );
        let combined = q(
            "check_confidential_compute_status",
            dev.check_confidential_compute_status(),
        );
        let environment = match (cc, ready, combined) {
            (Some(true), Some(true), Some(true)) => CcEnvironment::Production,
            (Some(true), Some(true), Some(false)) => CcEnvironment::Simulation,
            _ => CcEnvironment::Unknown,
        };
        let multi_gpu_mode = match ppcie {
            Some(true) => MultiGpuMode::ProtectedPcie,
            _ => MultiGpuMode::Unknown,
        };
        let cpu_caps = match dev.get_confidential_compute_capabilities() {
            Ok(c) => Some(format!("{:?}", c.cpu_caps)),
            Err(e) => Some(format!(
                "unmapped by nvml-wrapper ({e}); SNP (3) or SNP vTOM (4) per the NVML header"
            )),
        };
        notes.push("NVLE and TDISP state are not exposed by the safe nvml-wrapper 0.12 API".into());
        GpuProbeOutcome::State(GpuCcState {
            gpu_count: count,
            cc_feature_enabled: cc,
            multi_gpu_mode,
            environment,
            ready_accepting_clients: ready,
            dev_tools_mode: devtools,
            tdisp_enabled: None,
            cpu_caps,
            notes,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Detection
// ---------------------------------------------------------------------------------------

/// A tier that is not available, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierGap {
    /// The tier.
    pub tier: SecurityTier,
    /// What was missing.
    pub missing: String,
}

/// Outcome of [`detect`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detection {
    /// Root directory the file probes read under.
    pub root: PathBuf,
    /// Tiers available, ascending; always contains `Zero`.
    pub tiers_available: Vec<SecurityTier>,
    /// Largest available tier by specification number.
    pub highest: SecurityTier,
    /// Every probe, found or not.
    pub evidence: Vec<Evidence>,
    /// Each unavailable tier with what was missing.
    pub unavailable: Vec<TierGap>,
}

impl Detection {
    /// Whether `tier` was detected.
    pub fn is_available(&self, tier: SecurityTier) -> bool {
        self.tiers_available.contains(&tier)
    }

    /// Why `tier` is not available (`None` if it is).
    pub fn missing_for(&self, tier: SecurityTier) -> Option<&str> {
        self.unavailable
            .iter()
            .find(|g| g.tier == tier)
            .map(|g| g.missing.as_str())
    }

    /// Evidence records that were found.
    pub fn found(&self) -> impl Iterator<Item = &Evidence> {
        self.evidence.iter().filter(|e| e.found)
    }
}

struct Prober<'a> {
    root: &'a Path,
    evidence: Vec<Evidence>,
}

impl Prober<'_> {
    fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    /// Records an existence probe; returns whether the path exists.
    fn exists(
        &mut self,
        probe: &str,
        abs: &str,
        what: &str,
        supports: Option<SecurityTier>,
    ) -> bool {
        let p = self.path(abs);
        let (found, detail) = match p.try_exists() {
            Ok(true) => (true, format!("{what} present")),
            Ok(false) => (false, format!("{what} absent")),
            Err(e) => (false, format!("cannot check {what}: {e}")),
        };
        self.evidence
            .push(Evidence::new(probe, abs, found, detail, supports));
        found
    }

    fn read_trimmed(&self, abs: &str) -> Result<String, String> {
        fs::read_to_string(self.path(abs))
            .map(|s| s.trim().to_string())
            .map_err(|e| e.to_string())
    }

    fn cpuinfo_flags(&mut self) -> BTreeSet<String> {
        let mut flags = BTreeSet::new();
        match fs::read_to_string(self.path("/proc/cpuinfo")) {
            Ok(text) => {
                for line in text.lines() {
                    let Some((k, v)) = line.split_once(':') else {
                        continue;
                    };
                    let k = k.trim();
                    if k == "flags" || k == "Features" {
                        flags.extend(v.split_whitespace().map(str::to_string));
                    }
                }
            }
            Err(e) => self.evidence.push(Evidence::new(
                "cpu",
                "/proc/cpuinfo",
                false,
                format!("cannot read: {e}"),
                None,
            )),
        }
        flags
    }

    /// configfs-tsm report instances: `(instance, provider)` for each readable one.
    fn tsm_providers(&mut self) -> Vec<(String, String)> {
        const DIR: &str = "/sys/kernel/config/tsm/report";
        let mut out = Vec::new();
        let entries = match fs::read_dir(self.path(DIR)) {
            Ok(e) => e,
            Err(e) => {
                self.evidence.push(Evidence::new(
                    "configfs-tsm",
                    DIR,
                    false,
                    format!(
                        "report directory not readable ({e}); kernel < 6.7 or configfs not mounted"
                    ),
                    None,
                ));
                return out;
            }
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        if names.is_empty() {
            self.evidence.push(Evidence::new(
                "configfs-tsm",
                DIR,
                false,
                "no report instances (creating one needs root and a write; detection is read-only)",
                None,
            ));
        }
        for n in names {
            let abs = format!("{DIR}/{n}/provider");
            match self.read_trimmed(&abs) {
                Ok(p) => out.push((abs, p)),
                Err(e) => self.evidence.push(Evidence::new(
                    "configfs-tsm",
                    abs,
                    false,
                    format!("cannot read provider: {e}"),
                    None,
                )),
            }
        }
        out
    }

    fn sev_status(&mut self, abs: &str) -> Option<u64> {
        match self.read_trimmed(abs) {
            Ok(s) => {
                let h = s.trim_start_matches("0x").trim_start_matches("0X");
                match u64::from_str_radix(h, 16) {
                    Ok(v) => Some(v),
                    Err(_) => {
                        self.evidence.push(Evidence::new(
                            "sev-snp",
                            abs,
                            false,
                            format!("unparseable SEV_STATUS {s:?}"),
                            None,
                        ));
                        None
                    }
                }
            }
            Err(_) => {
                self.evidence.push(Evidence::new(
                    "sev-snp",
                    abs,
                    false,
                    "SEV_STATUS sysfs file absent (optional, recent kernels only)",
                    None,
                ));
                None
            }
        }
    }
}

/// Checks CPUID leaf 0x21 for the TDX signature `"IntelTDX    "` (EBX‖EDX‖ECX).
/// `__cpuid`/`__cpuid_count` are safe functions in this toolchain (rustc 1.95).
#[cfg(target_arch = "x86_64")]
fn cpuid_tdx() -> (bool, String) {
    use core::arch::x86_64::{__cpuid, __cpuid_count};
    let max = __cpuid(0).eax;
    if max < 0x21 {
        return (
            false,
            format!("max basic CPUID leaf {max:#x} < 0x21: not a TDX guest"),
        );
    }
    let r = __cpuid_count(0x21, 0);
    let mut sig = Vec::with_capacity(12);
    sig.extend_from_slice(&r.ebx.to_le_bytes());
    sig.extend_from_slice(&r.edx.to_le_bytes());
    sig.extend_from_slice(&r.ecx.to_le_bytes());
    if sig == b"IntelTDX    " {
        (true, "CPUID 0x21 signature \"IntelTDX    \"".into())
    } else {
        (
            false,
            format!(
                "CPUID 0x21 signature {:?} is not \"IntelTDX    \"",
                String::from_utf8_lossy(&sig)
            ),
        )
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn cpuid_tdx() -> (bool, String) {
    (false, "skipped: not an x86_64 build".into())
}

/// Detects available security tiers. Read-only, never fails, never panics on missing or
/// unreadable files. `root` is prepended to every probed path (use `/` in production);
/// the CPUID probe runs only when `root` is `/`.
///
/// Rules:
/// * **One** (SEV-SNP): any of `/sys/devices/platform/sev-guest`, `/dev/sev-guest`, a
///   configfs-tsm report whose provider is `sev_guest`, `/sys/devices/system/cpu/sev/vmpl`,
///   or a SEV_STATUS sysfs value with bit 2. cpuinfo `sev`/`sev_es` without SNP is
///   recorded as plain SEV/SEV-ES and does **not** give tier One.
/// * **Two** (TDX): cpuinfo `tdx_guest`, `/dev/tdx_guest`, `/dev/tdx-guest`,
///   `/dev/tdx-attest`, tsm provider `tdx_guest`, or the CPUID 0x21 signature.
/// * **Three** (GPU CC): the GPU probe reports CC protected (ccFeature or PPCIe/NVLE),
///   environment PRODUCTION, ready (accepting clients), DevTools off. A CPU TEE is not
///   required because paravisor CVMs (Azure) hide it from the guest; its absence is noted.
/// * **Four** (TEE-I/O): tier Three conditions **and** a detected CPU TEE (One or Two)
///   **and** TEE-I/O evidence: GPU TDISP state on, or `/sys/class/tsm/tsm0` present.
pub fn detect(root: impl AsRef<Path>, gpu: &dyn GpuProbe) -> Detection {
    let root = root.as_ref();
    let mut p = Prober {
        root,
        evidence: Vec::new(),
    };
    let t1 = Some(SecurityTier::One);
    let t2 = Some(SecurityTier::Two);

    let flags = p.cpuinfo_flags();
    let tsm = p.tsm_providers();

    // --- SEV-SNP ---
    let mut snp = false;
    snp |= p.exists(
        "sev-snp",
        "/sys/devices/platform/sev-guest",
        "SNP guest platform device",
        t1,
    );
    snp |= p.exists("sev-snp", "/dev/sev-guest", "SNP guest device node", t1);
    let vmpl_abs = "/sys/devices/system/cpu/sev/vmpl";
    if p.path(vmpl_abs).try_exists().unwrap_or(false) {
        let v = p
            .read_trimmed(vmpl_abs)
            .unwrap_or_else(|e| format!("unreadable: {e}"));
        p.evidence.push(Evidence::new(
            "sev-snp",
            vmpl_abs,
            true,
            format!("SNP guest sysfs present, VMPL {v}"),
            t1,
        ));
        snp = true;
    } else {
        p.evidence.push(Evidence::new(
            "sev-snp",
            vmpl_abs,
            false,
            "SNP guest sysfs (cpu/sev/vmpl) absent",
            None,
        ));
    }
    let mut status_plain_sev = false;
    for abs in [
        "/sys/devices/system/cpu/sev/sev_status",
        "/sys/hypervisor/sev/sev_status",
    ] {
        if let Some(v) = p.sev_status(abs) {
            if v & 0b100 != 0 {
                snp = true;
                p.evidence.push(Evidence::new(
                    "sev-snp",
                    abs,
                    true,
                    format!("SEV_STATUS {v:#x}: SNP active (bit 2)"),
                    t1,
                ));
            } else {
                status_plain_sev |= v & 0b11 != 0;
                p.evidence.push(Evidence::new(
                    "sev",
                    abs,
                    v & 0b11 != 0,
                    format!("SEV_STATUS {v:#x}: SNP bit not set"),
                    None,
                ));
            }
        }
    }
    for (abs, prov) in &tsm {
        if prov == "sev_guest" {
            snp = true;
            p.evidence.push(Evidence::new(
                "sev-snp",
                abs.clone(),
                true,
                "configfs-tsm provider sev_guest",
                t1,
            ));
        }
    }
    let has_snp_flag = flags.contains("sev_snp");
    p.evidence.push(Evidence::new(
        "sev-snp",
        "/proc/cpuinfo",
        has_snp_flag,
        if has_snp_flag {
            "cpuinfo flag sev_snp: CPU capability hint only; tier One needs an SNP guest interface"
        } else {
            "cpuinfo flag sev_snp absent"
        },
        None,
    ));

    // --- plain SEV / SEV-ES ---
    let sev_flags: Vec<&str> = ["sev", "sev_es"]
        .into_iter()
        .filter(|f| flags.contains(*f))
        .collect();
    if (!sev_flags.is_empty() || status_plain_sev) && !snp {
        p.evidence.push(Evidence::new(
            "sev",
            "/proc/cpuinfo",
            true,
            format!(
                "AMD SEV/SEV-ES memory encryption indicated (cpuinfo flags: {}) without SEV-SNP: \
                 memory is encrypted but not attestable in-guest; this does NOT give tier One",
                if sev_flags.is_empty() {
                    "none; from SEV_STATUS".to_string()
                } else {
                    sev_flags.join(", ")
                }
            ),
            None,
        ));
    } else if !sev_flags.is_empty() {
        p.evidence.push(Evidence::new(
            "sev",
            "/proc/cpuinfo",
            true,
            format!(
                "cpuinfo flags {} (superseded by the SEV-SNP evidence)",
                sev_flags.join(", ")
            ),
            None,
        ));
    } else {
        p.evidence.push(Evidence::new(
            "sev",
            "/proc/cpuinfo",
            false,
            "no sev/sev_es cpuinfo flags",
            None,
        ));
    }

    // --- TDX ---
    let mut tdx = false;
    let has_tdx_flag = flags.contains("tdx_guest");
    p.evidence.push(Evidence::new(
        "tdx",
        "/proc/cpuinfo",
        has_tdx_flag,
        if has_tdx_flag {
            "cpuinfo flag tdx_guest"
        } else {
            "cpuinfo flag tdx_guest absent (L2/TD-partitioned guests may lack it)"
        },
        t2,
    ));
    tdx |= has_tdx_flag;
    for dev in ["/dev/tdx_guest", "/dev/tdx-guest", "/dev/tdx-attest"] {
        tdx |= p.exists("tdx", dev, "TDX guest device node", t2);
    }
    for (abs, prov) in &tsm {
        if prov == "tdx_guest" {
            tdx = true;
            p.evidence.push(Evidence::new(
                "tdx",
                abs.clone(),
                true,
                "configfs-tsm provider tdx_guest",
                t2,
            ));
        }
    }
    for (abs, prov) in &tsm {
        if prov != "tdx_guest" && prov != "sev_guest" {
            p.evidence.push(Evidence::new(
                "configfs-tsm",
                abs.clone(),
                true,
                format!("provider {prov:?}: not a tier of this specification"),
                None,
            ));
        }
    }
    if root == Path::new("/") {
        let (found, detail) = cpuid_tdx();
        tdx |= found;
        p.evidence
            .push(Evidence::new("tdx", "cpuid 0x21", found, detail, t2));
    } else {
        p.evidence.push(Evidence::new(
            "tdx",
            "cpuid 0x21",
            false,
            "skipped: root is not / (fake tree), CPUID describes the real CPU",
            None,
        ));
    }

    let cpu_tee = snp || tdx;

    // --- CPU TEE-I/O ---
    let tsm0 = p.exists(
        "tee-io",
        "/sys/class/tsm/tsm0",
        "PCIe TSM (TEE-I/O) class device",
        Some(SecurityTier::Four),
    );

    // --- GPU ---
    let mut gaps_three: Vec<String> = Vec::new();
    let mut gpu_state: Option<GpuCcState> = None;
    match gpu.probe() {
        GpuProbeOutcome::Unavailable { reason } => {
            gaps_three.push(reason.clone());
            p.evidence.push(Evidence::new(
                "nvidia-cc",
                gpu.source(),
                false,
                reason,
                None,
            ));
        }
        GpuProbeOutcome::NoGpus => {
            gaps_three.push("no NVIDIA GPU".into());
            p.evidence.push(Evidence::new(
                "nvidia-cc",
                gpu.source(),
                false,
                "NVML reports no GPUs",
                None,
            ));
        }
        GpuProbeOutcome::State(s) => {
            gaps_three = s.tier_three_gaps();
            p.evidence.push(Evidence::new(
                "nvidia-cc",
                gpu.source(),
                gaps_three.is_empty(),
                format!(
                    "{} GPU(s); ccFeature={:?} multiGpuMode={:?} environment={:?} ready={:?} devtools={:?} cpuCaps={}{}",
                    s.gpu_count,
                    s.cc_feature_enabled,
                    s.multi_gpu_mode,
                    s.environment,
                    s.ready_accepting_clients,
                    s.dev_tools_mode,
                    s.cpu_caps.as_deref().unwrap_or("?"),
                    if gaps_three.is_empty() {
                        String::new()
                    } else {
                        format!("; not tier Three: {}", gaps_three.join("; "))
                    }
                ),
                Some(SecurityTier::Three),
            ));
            p.evidence.push(Evidence::new(
                "tee-io",
                format!("{} tdispState", gpu.source()),
                s.tdisp_enabled == Some(true),
                match s.tdisp_enabled {
                    Some(true) => "GPU TDISP (TEE-I/O) enabled",
                    Some(false) => "GPU TDISP (TEE-I/O) disabled",
                    None => "GPU TDISP state not reachable",
                },
                Some(SecurityTier::Four),
            ));
            for n in &s.notes {
                p.evidence.push(Evidence::new(
                    "nvidia-cc",
                    gpu.source(),
                    false,
                    format!("note: {n}"),
                    None,
                ));
            }
            if gaps_three.is_empty() && !cpu_tee {
                p.evidence.push(Evidence::new(
                    "nvidia-cc",
                    gpu.source(),
                    false,
                    "GPU CC is on but no CPU TEE was detected locally (paravisor CVMs such as \
                     Azure hide SNP/TDX from the guest); tier Three granted on the GPU signal",
                    None,
                ));
            }
            gpu_state = Some(s);
        }
    }

    // --- Tiers ---
    let mut available = vec![SecurityTier::Zero];
    let mut unavailable = Vec::new();
    let mut gap = |tier, missing: String| unavailable.push(TierGap { tier, missing });
    if snp {
        available.push(SecurityTier::One);
    } else {
        gap(
            SecurityTier::One,
            "no SEV-SNP guest interface (sev-guest platform device, /dev/sev-guest, \
             tsm provider sev_guest, cpu/sev/vmpl)"
                .into(),
        );
    }
    if tdx {
        available.push(SecurityTier::Two);
    } else {
        gap(
            SecurityTier::Two,
            "no TDX guest signal (cpuinfo tdx_guest, /dev/tdx_guest, tsm provider tdx_guest, CPUID 0x21)"
                .into(),
        );
    }
    let three = gpu_state.is_some() && gaps_three.is_empty();
    if three {
        available.push(SecurityTier::Three);
    } else {
        gap(
            SecurityTier::Three,
            format!("NVIDIA confidential computing: {}", gaps_three.join("; ")),
        );
    }
    let tdisp = gpu_state
        .as_ref()
        .is_some_and(|s| s.tdisp_enabled == Some(true));
    let mut gaps_four = Vec::new();
    if !three {
        gaps_four.push("tier Three GPU CC conditions not met".to_string());
    }
    if !cpu_tee {
        gaps_four.push("no CPU TEE (SEV-SNP or TDX) detected".into());
    }
    if !(tdisp || tsm0) {
        gaps_four.push("no TEE-I/O evidence (GPU TDISP state, /sys/class/tsm/tsm0)".into());
    }
    if gaps_four.is_empty() {
        available.push(SecurityTier::Four);
    } else {
        gap(SecurityTier::Four, gaps_four.join("; "));
    }
    available.sort();
    let highest = *available.iter().max().unwrap_or(&SecurityTier::Zero);
    Detection {
        root: root.to_path_buf(),
        tiers_available: available,
        highest,
        evidence: p.evidence,
        unavailable,
    }
}

/// [`detect`] on the real system: root `/` and NVML.
pub fn detect_system() -> Detection {
    detect("/", &NvmlGpuProbe)
}

// ---------------------------------------------------------------------------------------
// Tier decision
// ---------------------------------------------------------------------------------------

/// Error of [`with_tee_protection`] in strict mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TeeError {
    /// The requested tier was not detected.
    #[error(
        "requested security tier {requested} is not available: {missing}; available tiers: {available}"
    )]
    TierUnavailable {
        /// The tier asked for.
        requested: SecurityTier,
        /// What detection did not find.
        missing: String,
        /// Available tiers, human readable.
        available: String,
    },
}

/// The tier that will be used and how it was chosen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierDecision {
    /// Tier asked for.
    pub requested: SecurityTier,
    /// Tier in effect.
    pub effective: SecurityTier,
    /// Whether `effective != requested`.
    pub degraded: bool,
    /// Warnings to log and show in status.
    pub warnings: Vec<String>,
    /// Always `true`: at-rest encryption is on at every tier, TEE or not.
    pub encryption_at_rest: bool,
}

/// Chooses the effective tier. If `requested` is available it is used; otherwise, in
/// non-strict mode, the highest available tier is used and a warning records what was
/// missing; in strict mode a [`TeeError::TierUnavailable`] names it.
pub fn with_tee_protection(
    requested: SecurityTier,
    detection: &Detection,
    strict: bool,
) -> Result<TierDecision, TeeError> {
    if detection.is_available(requested) {
        return Ok(TierDecision {
            requested,
            effective: requested,
            degraded: false,
            warnings: Vec::new(),
            encryption_at_rest: true,
        });
    }
    let missing = detection
        .missing_for(requested)
        .unwrap_or("not detected")
        .to_string();
    if strict {
        return Err(TeeError::TierUnavailable {
            requested,
            missing,
            available: detection
                .tiers_available
                .iter()
                .map(|t| t.description())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let effective = detection.highest;
    Ok(TierDecision {
        requested,
        effective,
        degraded: true,
        warnings: vec![format!(
            "requested security tier {requested} is not available ({missing}); \
             running at tier {effective}; data stays encrypted at rest"
        )],
        encryption_at_rest: true,
    })
}

// ---------------------------------------------------------------------------------------
// Process hardening
// ---------------------------------------------------------------------------------------

/// What [`harden_process`] achieved.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardeningReport {
    /// `RLIMIT_CORE` set to 0 (soft and hard).
    pub core_rlimit_zero: bool,
    /// `prctl(PR_SET_DUMPABLE, 0)` succeeded (no core dumps, no ptrace by same uid).
    pub not_dumpable: bool,
    /// Either of the above.
    pub core_dumps_disabled: bool,
    /// What failed or was unsupported, and side effects.
    pub notes: Vec<String>,
}

/// Disables core dumps for this process via safe APIs (`nix`): `setrlimit(RLIMIT_CORE,
/// 0, 0)` and, on Linux, `prctl(PR_SET_DUMPABLE, 0)`. Never fails; reports what worked.
///
/// Side effects: the hard limit cannot be raised again by an unprivileged process and is
/// inherited by children; a non-dumpable process cannot be ptraced by its own uid and its
/// `/proc/self` files become root-owned.
pub fn harden_process() -> HardeningReport {
    let mut r = HardeningReport::default();
    #[cfg(unix)]
    {
        use nix::sys::resource::{Resource, setrlimit};
        match setrlimit(Resource::RLIMIT_CORE, 0, 0) {
            Ok(()) => r.core_rlimit_zero = true,
            Err(e) => r
                .notes
                .push(format!("setrlimit(RLIMIT_CORE, 0) failed: {e}")),
        }
    }
    #[cfg(target_os = "linux")]
    {
        match nix::sys::prctl::set_dumpable(false) {
            Ok(()) => {
                r.not_dumpable = true;
                r.notes.push(
                    "PR_SET_DUMPABLE=0: /proc/self is root-owned and same-uid ptrace is refused"
                        .into(),
                );
            }
            Err(e) => r
                .notes
                .push(format!("prctl(PR_SET_DUMPABLE, 0) failed: {e}")),
        }
    }
    #[cfg(not(unix))]
    r.notes
        .push("core-dump hardening not implemented on this platform".into());
    r.core_dumps_disabled = r.core_rlimit_zero || r.not_dumpable;
    r
}

// ---------------------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------------------

/// Default name of the at-rest cipher reported in status.
pub const DEFAULT_CIPHER: &str = "AES-256-GCM";

/// Security status for the DB status API (serializable).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SecurityStatus {
    /// Tier asked for.
    pub requested: SecurityTier,
    /// Highest tier detected.
    pub detected: SecurityTier,
    /// All tiers detected.
    pub tiers_available: Vec<SecurityTier>,
    /// Tier in effect.
    pub effective: SecurityTier,
    /// Detection evidence.
    pub evidence: Vec<Evidence>,
    /// Degradation and hygiene warnings.
    pub warnings: Vec<String>,
    /// Whether data is encrypted at rest (always `true` in hanzo-db).
    pub is_encrypted: bool,
    /// At-rest cipher name.
    pub cipher: String,
    /// Key provider description (no secrets).
    pub key_provider: ProviderInfo,
    /// Whether the KEK is bound to a TEE. `false` unless a TEE-bound provider is used;
    /// none is built in yet.
    pub keys_tee_sealed: bool,
    /// Whether the data keys are locked in RAM.
    pub memory_locked: bool,
    /// Whether core dumps are disabled.
    pub core_dumps_disabled: bool,
}

impl SecurityStatus {
    /// Assembles the status from a decision, the detection, the key provider description,
    /// the keyring's memory-lock state and the hardening report.
    pub fn new(
        decision: &TierDecision,
        detection: &Detection,
        key_provider: ProviderInfo,
        memory_locked: bool,
        hardening: &HardeningReport,
    ) -> Self {
        let mut warnings = decision.warnings.clone();
        if !memory_locked {
            warnings.push(
                "data keys are not locked in memory (mlock refused, see RLIMIT_MEMLOCK); \
                 they may be swapped"
                    .into(),
            );
        }
        if !hardening.core_dumps_disabled {
            warnings.push("core dumps are not disabled; a crash may write keys to disk".into());
        }
        if !key_provider.tee_sealed && decision.effective != SecurityTier::Zero {
            warnings.push("keys are not TEE-sealed: the KEK does not depend on attestation".into());
        }
        SecurityStatus {
            requested: decision.requested,
            detected: detection.highest,
            tiers_available: detection.tiers_available.clone(),
            effective: decision.effective,
            evidence: detection.evidence.clone(),
            warnings,
            is_encrypted: decision.encryption_at_rest,
            cipher: DEFAULT_CIPHER.into(),
            keys_tee_sealed: key_provider.tee_sealed,
            key_provider,
            memory_locked,
            core_dumps_disabled: hardening.core_dumps_disabled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_order_follows_spec_numbering() {
        assert!(SecurityTier::Zero < SecurityTier::One);
        assert!(SecurityTier::Three < SecurityTier::Four);
        assert_eq!(SecurityTier::ALL.len(), 5);
        assert_eq!(
            serde_json::to_string(&SecurityTier::Two).unwrap(),
            "\"Two\""
        );
    }

    #[test]
    fn cc_protected_counts_ppcie_and_nvle() {
        let mut s = GpuCcState {
            gpu_count: 8,
            cc_feature_enabled: Some(false),
            multi_gpu_mode: MultiGpuMode::ProtectedPcie,
            environment: CcEnvironment::Production,
            ready_accepting_clients: Some(true),
            dev_tools_mode: Some(false),
            tdisp_enabled: None,
            cpu_caps: None,
            notes: vec![],
        };
        assert!(s.cc_protected());
        assert!(s.tier_three_gaps().is_empty());
        s.multi_gpu_mode = MultiGpuMode::Nvle;
        assert!(s.cc_protected());
        s.multi_gpu_mode = MultiGpuMode::None;
        assert!(!s.cc_protected());
        assert_eq!(s.tier_three_gaps().len(), 1);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn cpuid_probe_does_not_panic() {
        let (_found, detail) = cpuid_tdx();
        assert!(!detail.is_empty());
    }
}
