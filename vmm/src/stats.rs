//! KVM's binary statistics (`KVM_GET_STATS_FD`, Linux 5.14+), and the
//! stage-2 mapping counts read from them.
//!
//! The stats file starts with a `kvm_stats_header`; at `desc_offset` come
//! `num_desc` descriptors of `16 + name_size` bytes each (flags u32,
//! exponent i16, size u16, offset u32, bucket_size u32, NUL-padded name);
//! at `data_offset` come the values, `size` u64 words per descriptor at
//! `data_offset + offset`. The layout is read once; values are re-read with
//! `pread` whenever asked.
//!
//! x86 KVM's VM statistics `pages_4k`, `pages_2m` and `pages_1g` count the
//! guest memory currently mapped by the stage-2 (TDP) page tables at each
//! page size. They must be read while the VM exists.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::FileExt;

use kvm_ioctls::VmFd;

/// `KVM_GET_STATS_FD`: `_IO(KVMIO, 0xce)`.
pub const KVM_GET_STATS_FD: libc::c_ulong = (0xae << 8) | 0xce;

const HEADER_SIZE: usize = 24;
const DESC_FIXED_SIZE: usize = 16;

/// Errors reading KVM statistics.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// The `KVM_GET_STATS_FD` ioctl failed (kernel older than 5.14?).
    #[error("KVM_GET_STATS_FD failed")]
    GetFd(#[source] io::Error),
    /// Reading the stats file failed.
    #[error("cannot read the KVM stats file")]
    Read(#[source] io::Error),
    /// The header or descriptors are inconsistent.
    #[error("malformed KVM stats file: {0}")]
    Malformed(&'static str),
    /// A statistic is not provided by this kernel.
    #[error("KVM does not provide the statistic '{0}'")]
    Missing(String),
}

/// One statistic's descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatDesc {
    /// Name, e.g. `pages_2m`.
    pub name: String,
    /// Type, unit and base flags.
    pub flags: u32,
    /// Number of u64 values.
    pub size: u16,
    /// Offset of the values from the data block.
    pub offset: u32,
}

/// An open KVM stats file with its parsed descriptors.
#[derive(Debug)]
pub struct KvmStats {
    file: File,
    data_offset: u64,
    descs: Vec<StatDesc>,
}

/// Parses the header and descriptors from the first bytes of a stats file,
/// `buf` holding at least everything up to the end of the descriptors.
/// Returns the data block offset and the descriptors.
pub fn parse_layout(buf: &[u8]) -> Result<(u64, Vec<StatDesc>), StatsError> {
    let u32_at = |o: usize| -> Result<u32, StatsError> {
        buf.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(StatsError::Malformed("truncated"))
    };
    let name_size = u32_at(4)? as usize;
    let num_desc = u32_at(8)? as usize;
    let desc_offset = u32_at(16)? as usize;
    let data_offset = u32_at(20)? as u64;
    let desc_size = DESC_FIXED_SIZE + name_size;
    let mut descs = Vec::with_capacity(num_desc);
    for i in 0..num_desc {
        let o = desc_offset + i * desc_size;
        let d = buf
            .get(o..o + desc_size)
            .ok_or(StatsError::Malformed("descriptor past the end"))?;
        let name_bytes = &d[DESC_FIXED_SIZE..];
        let end = name_bytes
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(name_bytes.len());
        descs.push(StatDesc {
            name: String::from_utf8_lossy(&name_bytes[..end]).into_owned(),
            flags: u32::from_le_bytes([d[0], d[1], d[2], d[3]]),
            size: u16::from_le_bytes([d[6], d[7]]),
            offset: u32::from_le_bytes([d[8], d[9], d[10], d[11]]),
        });
    }
    Ok((data_offset, descs))
}

impl KvmStats {
    /// Opens the VM's stats file.
    pub fn for_vm(vm: &VmFd) -> Result<Self, StatsError> {
        // SAFETY: KVM_GET_STATS_FD takes no argument and returns a new file
        // descriptor or -1; `vm` is a valid KVM VM fd for the call.
        let fd = unsafe { libc::ioctl(vm.as_raw_fd(), KVM_GET_STATS_FD as _, 0) };
        if fd < 0 {
            return Err(StatsError::GetFd(io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a fresh descriptor returned by the kernel that
        // nothing else owns; `File` takes over closing it.
        let file = unsafe { File::from_raw_fd(fd) };
        Self::from_file(file)
    }

    /// Parses an open stats file.
    pub fn from_file(file: File) -> Result<Self, StatsError> {
        let mut header = [0u8; HEADER_SIZE];
        file.read_exact_at(&mut header, 0)
            .map_err(StatsError::Read)?;
        let data_offset = u32::from_le_bytes([header[20], header[21], header[22], header[23]]);
        if (data_offset as usize) < HEADER_SIZE {
            return Err(StatsError::Malformed("data block inside the header"));
        }
        // Everything up to the data block holds header, id and descriptors.
        let mut buf = vec![0u8; data_offset as usize];
        file.read_exact_at(&mut buf, 0).map_err(StatsError::Read)?;
        let (data_offset, descs) = parse_layout(&buf)?;
        Ok(KvmStats {
            file,
            data_offset,
            descs,
        })
    }

    /// The descriptors.
    pub fn descriptors(&self) -> &[StatDesc] {
        &self.descs
    }

    /// Reads the first value of `desc`.
    pub fn value_of(&self, desc: &StatDesc) -> Result<u64, StatsError> {
        let mut b = [0u8; 8];
        self.file
            .read_exact_at(&mut b, self.data_offset + u64::from(desc.offset))
            .map_err(StatsError::Read)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads the (first) value of the statistic `name`.
    pub fn get(&self, name: &str) -> Result<u64, StatsError> {
        let d = self
            .descs
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| StatsError::Missing(name.to_string()))?;
        self.value_of(d)
    }

    /// The stage-2 mapping counts.
    pub fn stage2(&self) -> Result<Stage2Counts, StatsError> {
        Ok(Stage2Counts {
            pages_4k: self.get("pages_4k")?,
            pages_2m: self.get("pages_2m")?,
            pages_1g: self.get("pages_1g")?,
        })
    }

    /// All single-valued statistics as `name=value` pairs.
    pub fn all(&self) -> Vec<(String, u64)> {
        self.descs
            .iter()
            .filter(|d| d.size == 1)
            .filter_map(|d| self.value_of(d).ok().map(|v| (d.name.clone(), v)))
            .collect()
    }
}

/// KVM's stage-2 mapping counts: pages of guest memory mapped at each size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stage2Counts {
    /// 4 KiB mappings.
    pub pages_4k: u64,
    /// 2 MiB mappings.
    pub pages_2m: u64,
    /// 1 GiB mappings.
    pub pages_1g: u64,
}

impl Stage2Counts {
    /// Bytes of guest memory mapped.
    pub fn mapped_bytes(&self) -> u64 {
        (self.pages_4k << 12) + (self.pages_2m << 21) + (self.pages_1g << 30)
    }
}

impl fmt::Display for Stage2Counts {
    /// The parseable line: `kvm-stage2: pages_4k=N pages_2m=N pages_1g=N`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kvm-stage2: pages_4k={} pages_2m={} pages_1g={}",
            self.pages_4k, self.pages_2m, self.pages_1g
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Builds a stats file as KVM lays it out.
    fn synthetic(stats: &[(&str, u64)]) -> Vec<u8> {
        let name_size = 48usize;
        let id = b"kvm-1234/5\0";
        let id_offset = HEADER_SIZE;
        let desc_offset = id_offset + 64;
        let desc_size = DESC_FIXED_SIZE + name_size;
        let data_offset = desc_offset + desc_size * stats.len();
        let mut b = vec![0u8; data_offset + 8 * stats.len()];
        let put32 =
            |b: &mut Vec<u8>, o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_le_bytes());
        put32(&mut b, 4, name_size as u32);
        put32(&mut b, 8, stats.len() as u32);
        put32(&mut b, 12, id_offset as u32);
        put32(&mut b, 16, desc_offset as u32);
        put32(&mut b, 20, data_offset as u32);
        b[id_offset..id_offset + id.len()].copy_from_slice(id);
        for (i, (name, value)) in stats.iter().enumerate() {
            let o = desc_offset + i * desc_size;
            b[o + 6..o + 8].copy_from_slice(&1u16.to_le_bytes());
            put32(&mut b, o + 8, (i * 8) as u32);
            b[o + 16..o + 16 + name.len()].copy_from_slice(name.as_bytes());
            let d = data_offset + i * 8;
            b[d..d + 8].copy_from_slice(&value.to_le_bytes());
        }
        b
    }

    #[test]
    fn parses_descriptors_and_values() {
        let bytes = synthetic(&[
            ("remote_tlb_flush", 7),
            ("pages_4k", 100),
            ("pages_2m", 20),
            ("pages_1g", 3),
        ]);
        let (_, descs) = parse_layout(&bytes).unwrap();
        assert_eq!(descs.len(), 4);
        assert_eq!(descs[1].name, "pages_4k");
        assert_eq!(descs[1].offset, 8);

        let path = std::env::temp_dir().join(format!("vmm-stats-test-{}", std::process::id()));
        File::create(&path).unwrap().write_all(&bytes).unwrap();
        let stats = KvmStats::from_file(File::open(&path).unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
        let s = stats.stage2().unwrap();
        assert_eq!(
            s,
            Stage2Counts {
                pages_4k: 100,
                pages_2m: 20,
                pages_1g: 3
            }
        );
        assert_eq!(
            s.to_string(),
            "kvm-stage2: pages_4k=100 pages_2m=20 pages_1g=3"
        );
        assert_eq!(
            s.mapped_bytes(),
            100 * 4096 + 20 * (2 << 20) + 3 * (1 << 30)
        );
        assert_eq!(stats.get("remote_tlb_flush").unwrap(), 7);
        assert!(matches!(stats.get("nope"), Err(StatsError::Missing(_))));
        assert_eq!(stats.all().len(), 4);
    }

    #[test]
    fn truncated_files_are_rejected() {
        let bytes = synthetic(&[("pages_4k", 1)]);
        assert!(parse_layout(&bytes[..30]).is_err());
    }
}
