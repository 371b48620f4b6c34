//! Huge pages under the graph. A search visits a few thousand nodes spread
//! over the graph's memory (about a gigabyte at 1M × 768); on 4 KiB pages
//! nearly every visit misses the TLB, and in a virtual machine each miss
//! walks two page tables. Linux backs anonymous memory with 2 MiB pages only
//! where a program asks (`transparent_hugepage` set to `madvise`, the common
//! default), and usearch maps its arenas itself. So once a graph is built or
//! loaded, [`collapse`] asks the kernel (`MADV_COLLAPSE`, Linux 6.1 and
//! later) to move each fully resident, 2 MiB-aligned stretch of the process's
//! large anonymous mappings onto huge pages. Only memory already resident is
//! moved, so the resident size does not grow. Where the kernel refuses
//! (older kernels, THP off) nothing changes.

/// What one pass moved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Collapsed {
    /// 2 MiB stretches now on huge pages (or already on them).
    pub chunks: usize,
    /// Stretches the kernel could not move (no free huge page, say).
    pub refused: usize,
}

/// Size of a huge page on x86-64 and most arm64 kernels.
const HUGE: usize = 2 << 20;

/// Mappings smaller than this are left alone: the graph's arenas are larger,
/// and small ones are mostly the allocator's and the stacks'.
const LEAST: usize = 8 << 20;

/// Anonymous, private, read-write mappings of at least [`LEAST`] bytes, as
/// `(start, end)` addresses.
fn candidates(maps: &str) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let range = f.next()?;
            let perms = f.next()?;
            let (_offset, _dev, inode) = (f.next()?, f.next()?, f.next()?);
            if perms != "rw-p" || inode != "0" || f.next().is_some() {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            let a = usize::from_str_radix(a, 16).ok()?;
            let b = usize::from_str_radix(b, 16).ok()?;
            (b.saturating_sub(a) >= LEAST).then_some((a, b))
        })
        .collect()
}

/// The 2 MiB-aligned stretches inside `(start, end)`.
fn chunks((start, end): (usize, usize)) -> impl Iterator<Item = usize> {
    let first = start.div_ceil(HUGE) * HUGE;
    // Below `end - HUGE + 1`: each stretch ends by `end`.
    (first..end.saturating_sub(HUGE - 1)).step_by(HUGE)
}

/// Moves the fully resident stretches of large anonymous mappings onto huge
/// pages. Takes a while (a copy of each stretch): run it in the background.
/// The pass covers the whole process, so tables built or loaded together
/// take turns: a later pass finds the earlier one's stretches moved already.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub(crate) fn collapse() -> Collapsed {
    use nix::libc;
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut done = Collapsed::default();
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return done;
    };
    let page = 4096;
    let mut resident = vec![0u8; HUGE / page];
    for mapping in candidates(&maps) {
        for chunk in chunks(mapping) {
            // SAFETY: `chunk..chunk + HUGE` lies inside a mapping of this
            // process (it may have been unmapped since /proc was read, and
            // then the call fails with ENOMEM); `resident` holds one byte
            // per 4 KiB page of it.
            let ok =
                unsafe { libc::mincore(chunk as *mut libc::c_void, HUGE, resident.as_mut_ptr()) }
                    == 0;
            if !ok || resident.iter().any(|b| b & 1 == 0) {
                continue;
            }
            // SAFETY: MADV_COLLAPSE changes how the stretch is backed, not
            // its contents; it fails (EINVAL) where the kernel lacks it.
            let r = unsafe { libc::madvise(chunk as *mut libc::c_void, HUGE, libc::MADV_COLLAPSE) };
            if r == 0 {
                done.chunks += 1;
            } else if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
                return done;
            } else {
                done.refused += 1;
            }
        }
    }
    done
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn collapse() -> Collapsed {
    Collapsed::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_anonymous_mappings_and_their_aligned_stretches() {
        let maps = "\
7f0000000000-7f0001000000 rw-p 00000000 00:00 0 \n\
7f0001000000-7f0001400000 rw-p 00000000 00:00 0\n\
7f0002000000-7f0003000000 r--p 00000000 08:01 1234 /usr/lib/libc.so\n\
7f0004000000-7f0005000000 rw-p 00000000 00:00 0 [stack]\n\
7f0006100000-7f0006e00000 rw-p 00000000 00:00 0\n";
        let c = candidates(maps);
        assert_eq!(
            c,
            vec![
                (0x7f00_0000_0000, 0x7f00_0100_0000),
                (0x7f00_0610_0000, 0x7f00_06e0_0000)
            ]
        );
        assert_eq!(chunks(c[0]).count(), 8, "16 MiB aligned: eight stretches");
        // 0x...6100000 is not 2 MiB-aligned: the first stretch starts at 0x...6200000.
        let second: Vec<usize> = chunks(c[1]).collect();
        assert_eq!(second.first(), Some(&0x7f00_0620_0000));
        assert_eq!(second.last(), Some(&(0x7f00_06e0_0000 - HUGE)));
        assert_eq!(second.len(), 6);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn resident_memory_moves_onto_huge_pages_unchanged() {
        let huge_kib = || {
            std::fs::read_to_string("/proc/self/smaps_rollup")
                .unwrap()
                .lines()
                .find(|l| l.starts_with("AnonHugePages:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .unwrap()
        };
        // 64 MiB written through: every stretch of it resident.
        let v: Vec<u64> = (0..8u64 << 20)
            .map(|i| i.wrapping_mul(0x9e37_79b9))
            .collect();
        let c = collapse();
        if c.chunks == 0 {
            println!("skipped: this kernel moved nothing onto huge pages ({c:?})");
            return;
        }
        assert!(huge_kib() >= 2048, "{c:?} but no huge page in smaps");
        assert!(
            v.iter()
                .enumerate()
                .all(|(i, x)| *x == (i as u64).wrapping_mul(0x9e37_79b9))
        );
    }
}
