//! virtio-blk on a raw image file ([virtio 1.2, 5.2]): one request queue,
//! read, write, flush (`fdatasync`) and the device ID, with every request
//! error reported to the guest in the request's status byte.
//!
//! [`DiskImage`] is the opened, locked image; [`Block`] the device that
//! the transport drives; [`BlockWorker`] the event loop that serves the
//! queue on the device's own thread. Requests move through a bounce
//! buffer of bounded size, so that no descriptor chain, however long,
//! makes `vmm` allocate more than [`CHUNK`] bytes.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};
use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO, VIRTIO_BLK_F_SEG_MAX,
    VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP,
    VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
use virtio_queue::{DescriptorChain, QueueT, Reader, Writer};
use vm_memory::GuestMemoryMmap;

use super::worker::Worker;
use super::{ActivateError, Activation, ActiveQueue, DeviceInterrupts, VirtioDevice};
use crate::config::DiskConfig;

/// The virtio device type of a block device.
pub const DEVICE_TYPE: u16 = 2;
/// PCI class of a block device: mass storage, other.
pub const PCI_CLASS: u32 = 0x01_80_00;
/// The size of a sector, the unit of the protocol.
pub const SECTOR_SIZE: u64 = 512;
/// The request queue's size.
const QUEUE_SIZE: u16 = 256;
/// The bounce buffer: the most a request moves per read or write call.
pub const CHUNK: usize = 128 << 10;
/// The size of a request header (type, reserved, sector).
const HEADER_SIZE: usize = 16;

/// Errors opening a disk image.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The image does not exist.
    #[error("--disk path={0}: no such file; create the image first (for example `truncate -s 1G {0}` and `mkfs.ext4 {0}`)")]
    NotFound(String),
    /// The path is a directory.
    #[error("--disk path={0}: is a directory; give the path of a raw image file")]
    Directory(String),
    /// Neither a regular file nor a block device.
    #[error("--disk path={0}: is neither a regular file nor a block device")]
    NotAnImage(String),
    /// Opening it read-write is not allowed.
    #[error("--disk path={0}: cannot open it read-write: permission denied; give this user write access to it, or add readonly=on")]
    NoWriteAccess(String),
    /// Opening it at all is not allowed.
    #[error(
        "--disk path={0}: cannot open it: permission denied; give this user read access to it"
    )]
    NoReadAccess(String),
    /// Another open failure.
    #[error("--disk path={0}: cannot open it")]
    Open(String, #[source] io::Error),
    /// The image holds no whole sector.
    #[error("--disk path={0}: the image is {1} bytes, less than one 512-byte sector; give it a size (for example `truncate -s 1G {0}`)")]
    TooSmall(String, u64),
    /// Another process holds a conflicting lock on it.
    #[error("--disk path={0}: another process is using the image ({1}); stop it first, or give both readonly=on")]
    InUse(String, &'static str),
    /// Locking failed for another reason.
    #[error("--disk path={0}: cannot lock the image")]
    Lock(String, #[source] io::Error),
    /// The size could not be read.
    #[error("--disk path={0}: cannot read its size")]
    Size(String, #[source] io::Error),
}

/// An opened raw disk image, locked against other writers: shared when
/// read-only, exclusive when read-write (`flock`, as QEMU locks images).
#[derive(Debug)]
pub struct DiskImage {
    file: File,
    path: PathBuf,
    readonly: bool,
    sectors: u64,
    serial: [u8; VIRTIO_BLK_ID_BYTES as usize],
}

impl DiskImage {
    /// Opens and locks the image `config` names.
    pub fn open(config: &DiskConfig) -> Result<Self, DiskError> {
        let shown = config.path.display().to_string();
        let meta = std::fs::metadata(&config.path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => DiskError::NotFound(shown.clone()),
            io::ErrorKind::PermissionDenied => DiskError::NoReadAccess(shown.clone()),
            _ => DiskError::Open(shown.clone(), e),
        })?;
        if meta.is_dir() {
            return Err(DiskError::Directory(shown));
        }
        use std::os::unix::fs::FileTypeExt;
        if !meta.is_file() && !meta.file_type().is_block_device() {
            return Err(DiskError::NotAnImage(shown));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(!config.readonly)
            .open(&config.path)
            .map_err(|e| match (e.kind(), config.readonly) {
                (io::ErrorKind::PermissionDenied, false) => DiskError::NoWriteAccess(shown.clone()),
                (io::ErrorKind::PermissionDenied, true) => DiskError::NoReadAccess(shown.clone()),
                (io::ErrorKind::ReadOnlyFilesystem, false) => {
                    DiskError::NoWriteAccess(shown.clone())
                }
                _ => DiskError::Open(shown.clone(), e),
            })?;
        let (operation, holder) = if config.readonly {
            (libc::LOCK_SH, "it holds the image read-write")
        } else {
            (libc::LOCK_EX, "it holds the image")
        };
        // SAFETY: flock on a valid open fd changes only the lock state of
        // its open file description, which `file` owns.
        if unsafe { libc::flock(file.as_raw_fd(), operation | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                DiskError::InUse(shown, holder)
            } else {
                DiskError::Lock(shown, e)
            });
        }
        let bytes = size_of_file(&file).map_err(|e| DiskError::Size(shown.clone(), e))?;
        let sectors = bytes / SECTOR_SIZE;
        if sectors == 0 {
            return Err(DiskError::TooSmall(shown, bytes));
        }
        if bytes % SECTOR_SIZE != 0 {
            log::warn!(
                "--disk path={shown}: {bytes} bytes is not a whole number of sectors; the guest sees the first {sectors} sectors"
            );
        }
        let mut serial = [0u8; VIRTIO_BLK_ID_BYTES as usize];
        let id = config.serial.as_bytes();
        let n = id.len().min(serial.len());
        serial[..n].copy_from_slice(&id[..n]);
        Ok(DiskImage {
            file,
            path: config.path.clone(),
            readonly: config.readonly,
            sectors,
            serial,
        })
    }

    /// The image's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The image's size in sectors.
    pub fn sectors(&self) -> u64 {
        self.sectors
    }

    /// Whether the guest may not write.
    pub fn readonly(&self) -> bool {
        self.readonly
    }

    /// The (device, inode) pair that says whether two paths are one image.
    pub fn identity(&self) -> io::Result<(u64, u64)> {
        let m = self.file.metadata()?;
        Ok((m.dev(), m.ino()))
    }

    /// Writes what the guest wrote through to stable storage.
    pub fn flush(&self) -> io::Result<()> {
        if self.readonly {
            return Ok(());
        }
        self.file.sync_data()
    }
}

fn size_of_file(file: &File) -> io::Result<u64> {
    use std::io::Seek;
    // A block device's metadata says 0 bytes; seeking to its end does not.
    let mut f = file;
    f.seek(io::SeekFrom::End(0))
}

/// How a request ended: the status byte for the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestStatus {
    /// Done.
    Ok,
    /// The request failed: out of range, misaligned, a write to a
    /// read-only disk, or a host I/O error.
    IoError,
    /// The request type is not supported.
    Unsupported,
}

impl RequestStatus {
    fn byte(self) -> u8 {
        (match self {
            RequestStatus::Ok => VIRTIO_BLK_S_OK,
            RequestStatus::IoError => VIRTIO_BLK_S_IOERR,
            RequestStatus::Unsupported => VIRTIO_BLK_S_UNSUPP,
        }) as u8
    }
}

/// Checks that `len` bytes at `sector` lie inside a disk of `sectors`
/// sectors and are whole sectors; returns the byte offset.
pub fn check_range(sector: u64, len: u64, sectors: u64) -> Option<u64> {
    if !len.is_multiple_of(SECTOR_SIZE) {
        return None;
    }
    let end = sector.checked_add(len / SECTOR_SIZE)?;
    (end <= sectors).then(|| sector * SECTOR_SIZE)
}

/// Serves one request whose readable part is `reader` (header, then the
/// data of a write) and writable part `writer` (the data of a read, then
/// the status byte). Returns the bytes written to the guest, status
/// included, or `None` for a chain too malformed to carry a status.
pub fn serve(
    disk: &DiskImage,
    reader: &mut Reader<'_>,
    writer: &mut Writer<'_>,
    buf: &mut [u8],
) -> Option<u32> {
    let mut header = [0u8; HEADER_SIZE];
    reader.read_exact(&mut header).ok()?;
    let kind = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
    let sector = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    let data_len = writer.available_bytes().checked_sub(1)?;
    let mut status_writer = writer.split_at(data_len).ok()?;
    let status = match kind {
        VIRTIO_BLK_T_IN => read_sectors(disk, sector, writer, data_len, buf),
        VIRTIO_BLK_T_OUT => write_sectors(disk, sector, reader, buf),
        VIRTIO_BLK_T_FLUSH => match disk.flush() {
            Ok(()) => RequestStatus::Ok,
            Err(e) => {
                log::warn!("{}: flush: {e}", disk.path.display());
                RequestStatus::IoError
            }
        },
        VIRTIO_BLK_T_GET_ID => {
            let n = data_len.min(disk.serial.len());
            match writer.write_all(&disk.serial[..n]) {
                Ok(()) => RequestStatus::Ok,
                Err(_) => RequestStatus::IoError,
            }
        }
        _ => RequestStatus::Unsupported,
    };
    status_writer.write_all(&[status.byte()]).ok()?;
    Some((writer.bytes_written() + 1) as u32)
}

fn read_sectors(
    disk: &DiskImage,
    sector: u64,
    writer: &mut Writer<'_>,
    len: usize,
    buf: &mut [u8],
) -> RequestStatus {
    let Some(mut offset) = check_range(sector, len as u64, disk.sectors) else {
        return RequestStatus::IoError;
    };
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        if let Err(e) = disk.file.read_exact_at(&mut buf[..n], offset) {
            log::warn!("{}: read at {offset}: {e}", disk.path.display());
            return RequestStatus::IoError;
        }
        if writer.write_all(&buf[..n]).is_err() {
            return RequestStatus::IoError;
        }
        offset += n as u64;
        left -= n;
    }
    RequestStatus::Ok
}

fn write_sectors(
    disk: &DiskImage,
    sector: u64,
    reader: &mut Reader<'_>,
    buf: &mut [u8],
) -> RequestStatus {
    if disk.readonly {
        return RequestStatus::IoError;
    }
    let len = reader.available_bytes();
    let Some(mut offset) = check_range(sector, len as u64, disk.sectors) else {
        return RequestStatus::IoError;
    };
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        if reader.read_exact(&mut buf[..n]).is_err() {
            return RequestStatus::IoError;
        }
        if let Err(e) = disk.file.write_all_at(&buf[..n], offset) {
            log::warn!("{}: write at {offset}: {e}", disk.path.display());
            return RequestStatus::IoError;
        }
        offset += n as u64;
        left -= n;
    }
    RequestStatus::Ok
}

/// The device-specific configuration: capacity, seg_max and blk_size.
fn config_bytes(sectors: u64) -> [u8; 24] {
    let mut c = [0u8; 24];
    c[0..8].copy_from_slice(&sectors.to_le_bytes());
    // seg_max: a chain holds the header and the status besides the data.
    c[12..16].copy_from_slice(&u32::from(QUEUE_SIZE - 2).to_le_bytes());
    c[20..24].copy_from_slice(&(SECTOR_SIZE as u32).to_le_bytes());
    c
}

/// A virtio-blk device.
#[derive(Debug)]
pub struct Block {
    name: String,
    disk: Arc<DiskImage>,
    config: [u8; 24],
}

impl Block {
    /// A device named `name` serving `disk`.
    pub fn new(name: String, disk: DiskImage) -> Self {
        let config = config_bytes(disk.sectors);
        Block {
            name,
            disk: Arc::new(disk),
            config,
        }
    }
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u16 {
        DEVICE_TYPE
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn features(&self) -> u64 {
        let mut f = super::F_VERSION_1
            | super::F_EVENT_IDX
            | super::F_INDIRECT_DESC
            | 1 << VIRTIO_BLK_F_SEG_MAX
            | 1 << VIRTIO_BLK_F_BLK_SIZE
            | 1 << VIRTIO_BLK_F_FLUSH;
        if self.disk.readonly {
            f |= 1 << VIRTIO_BLK_F_RO;
        }
        f
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::read_bytes(&self.config, offset, data);
    }

    fn activate(&mut self, activation: Activation) -> Result<Worker, ActivateError> {
        let Activation {
            memory,
            queues,
            interrupts,
            ..
        } = activation;
        let enabled = queues.len();
        let queue = queues
            .into_iter()
            .next()
            .ok_or(ActivateError::MissingQueues { enabled, needed: 1 })?;
        let worker = BlockWorker {
            name: self.name.clone(),
            disk: Arc::clone(&self.disk),
            memory,
            queue,
            interrupts,
            buf: vec![0; CHUNK],
            broken: false,
        };
        Worker::spawn(self.name.clone(), worker).map_err(ActivateError::Worker)
    }
}

/// The request loop of an active virtio-blk device.
struct BlockWorker {
    name: String,
    disk: Arc<DiskImage>,
    memory: GuestMemoryMmap,
    queue: ActiveQueue,
    interrupts: DeviceInterrupts,
    buf: Vec<u8>,
    /// The driver broke the ring: nothing is served until a reset.
    broken: bool,
}

impl BlockWorker {
    fn serve_chain(&mut self, chain: DescriptorChain<&GuestMemoryMmap>) -> u32 {
        let mem = &self.memory;
        let (Ok(mut reader), Ok(mut writer)) = (chain.clone().reader(mem), chain.writer(mem))
        else {
            log::debug!("{}: a descriptor chain outside guest memory", self.name);
            return 0;
        };
        serve(&self.disk, &mut reader, &mut writer, &mut self.buf).unwrap_or_else(|| {
            log::debug!("{}: a request without header or status", self.name);
            0
        })
    }

    fn serve_queue(&mut self) -> Result<(), virtio_queue::Error> {
        let memory = self.memory.clone();
        loop {
            self.queue.queue.disable_notification(&memory)?;
            while let Some(chain) = super::next_chain(&mut self.queue.queue, &memory)? {
                let head = chain.head_index();
                let len = self.serve_chain(chain);
                self.queue.queue.add_used(&memory, head, len)?;
                if self.queue.queue.needs_notification(&memory)? {
                    self.interrupts.queue(self.queue.vector);
                }
            }
            if !self.queue.queue.enable_notification(&memory)? {
                return Ok(());
            }
        }
    }
}

impl MutEventSubscriber for BlockWorker {
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.queue.notify, EventSet::IN)) {
            log::error!("{}: cannot watch its queue: {e:?}", self.name);
        }
    }

    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        let _ = self.queue.notify.read();
        if self.broken {
            return;
        }
        if let Err(e) = self.serve_queue() {
            // The driver broke the ring: the device stops serving it until
            // a reset, and tells the driver so, once.
            log::warn!(
                "{}: the queue is broken ({e}); the device needs a reset",
                self.name
            );
            self.broken = true;
            self.interrupts.needs_reset();
        }
    }
}

impl Drop for BlockWorker {
    fn drop(&mut self) {
        if let Err(e) = self.disk.flush() {
            log::error!(
                "{}: cannot flush {}: {e}",
                self.name,
                self.disk.path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::{Bytes, GuestAddress};

    const WRITE: u16 = virtio_bindings::virtio_ring::VRING_DESC_F_WRITE as u16;
    const HEADER_AT: u64 = 0x10_0000;
    const DATA_AT: u64 = 0x20_0000;
    const STATUS_AT: u64 = 0x30_0000;

    /// A temporary image of `sectors` sectors, sector n filled with byte n.
    fn image(name: &str, sectors: u64, readonly: bool) -> (DiskImage, PathBuf) {
        let path = std::env::temp_dir().join(format!("vmm-blk-{}-{name}.img", std::process::id()));
        let bytes: Vec<u8> = (0..sectors)
            .flat_map(|s| vec![s as u8; SECTOR_SIZE as usize])
            .collect();
        std::fs::write(&path, bytes).unwrap();
        let disk = DiskImage::open(&DiskConfig {
            path: path.clone(),
            readonly,
            serial: "serial-0123456789abcdef".chars().take(20).collect(),
        })
        .unwrap();
        (disk, path)
    }

    /// Runs one request: header (type, sector), then data descriptors
    /// (`out` bytes readable, or `in_len` writable), then the status.
    /// Returns (used length, status byte, bytes the device wrote).
    fn request(
        disk: &DiskImage,
        kind: u32,
        sector: u64,
        out: &[u8],
        in_len: u32,
    ) -> (Option<u32>, u8, Vec<u8>) {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 4 << 20)]).unwrap();
        let mut header = [0u8; 16];
        header[0..4].copy_from_slice(&kind.to_le_bytes());
        header[8..16].copy_from_slice(&sector.to_le_bytes());
        mem.write_slice(&header, GuestAddress(HEADER_AT)).unwrap();
        mem.write_slice(out, GuestAddress(DATA_AT)).unwrap();
        mem.write_obj(0xeeu8, GuestAddress(STATUS_AT)).unwrap();
        let mut descs = vec![RawDescriptor::from(SplitDescriptor::new(
            HEADER_AT, 16, 0, 0,
        ))];
        if !out.is_empty() {
            descs.push(RawDescriptor::from(SplitDescriptor::new(
                DATA_AT,
                out.len() as u32,
                0,
                0,
            )));
        }
        if in_len > 0 {
            descs.push(RawDescriptor::from(SplitDescriptor::new(
                DATA_AT, in_len, WRITE, 0,
            )));
        }
        descs.push(RawDescriptor::from(SplitDescriptor::new(
            STATUS_AT, 1, WRITE, 0,
        )));
        let queue = MockSplitQueue::new(&mem, 16);
        let chain = queue.build_desc_chain(&descs).unwrap();
        let mut reader = chain.clone().reader(&mem).unwrap();
        let mut writer = chain.writer(&mem).unwrap();
        let mut buf = vec![0u8; 1024];
        let used = serve(disk, &mut reader, &mut writer, &mut buf);
        let status: u8 = mem.read_obj(GuestAddress(STATUS_AT)).unwrap();
        let mut data = vec![0u8; in_len as usize];
        mem.read_slice(&mut data, GuestAddress(DATA_AT)).unwrap();
        (used, status, data)
    }

    #[test]
    fn reads_return_the_sectors_asked_for() {
        let (disk, path) = image("read", 8, false);
        // 3 sectors from sector 2, through a bounce buffer smaller than
        // the request.
        let (used, status, data) = request(&disk, VIRTIO_BLK_T_IN, 2, &[], 1536);
        assert_eq!((used, status), (Some(1537), VIRTIO_BLK_S_OK as u8));
        assert!(data[..512].iter().all(|&b| b == 2));
        assert!(data[1024..].iter().all(|&b| b == 4));
        // Past the end, or not whole sectors: an I/O error, nothing read.
        assert_eq!(
            request(&disk, VIRTIO_BLK_T_IN, 7, &[], 1024).1,
            VIRTIO_BLK_S_IOERR as u8
        );
        assert_eq!(
            request(&disk, VIRTIO_BLK_T_IN, 0, &[], 100).1,
            VIRTIO_BLK_S_IOERR as u8
        );
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn writes_reach_the_image_and_a_read_only_disk_refuses_them() {
        let (disk, path) = image("write", 8, false);
        let out = vec![0xabu8; 1024];
        let (used, status, _) = request(&disk, VIRTIO_BLK_T_OUT, 5, &out, 0);
        assert_eq!((used, status), (Some(1), VIRTIO_BLK_S_OK as u8));
        assert_eq!(
            request(&disk, VIRTIO_BLK_T_FLUSH, 0, &[], 0).1,
            VIRTIO_BLK_S_OK as u8
        );
        let on_disk = std::fs::read(&path).unwrap();
        assert!(on_disk[5 * 512..7 * 512].iter().all(|&b| b == 0xab));
        assert!(
            on_disk[7 * 512..].iter().all(|&b| b == 7),
            "the sector after is untouched"
        );
        assert_eq!(
            request(&disk, VIRTIO_BLK_T_OUT, 7, &out, 0).1,
            VIRTIO_BLK_S_IOERR as u8,
            "past the end"
        );
        drop(disk);

        let (ro, _) = image("write", 8, true);
        assert_eq!(
            request(&ro, VIRTIO_BLK_T_OUT, 0, &out, 0).1,
            VIRTIO_BLK_S_IOERR as u8
        );
        assert_eq!(
            request(&ro, VIRTIO_BLK_T_FLUSH, 0, &[], 0).1,
            VIRTIO_BLK_S_OK as u8
        );
        let after = std::fs::read(&path).unwrap();
        assert!(after[..512].iter().all(|&b| b == 0) && after[512..1024].iter().all(|&b| b == 1));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn get_id_returns_the_serial_and_unknown_requests_are_unsupported() {
        let (disk, path) = image("id", 1, false);
        let (used, status, data) = request(&disk, VIRTIO_BLK_T_GET_ID, 0, &[], 20);
        assert_eq!((used, status), (Some(21), VIRTIO_BLK_S_OK as u8));
        assert_eq!(&data, b"serial-0123456789abc");
        assert_eq!(
            request(&disk, 11, 0, &[], 0).1,
            VIRTIO_BLK_S_UNSUPP as u8,
            "DISCARD is not offered"
        );
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn bad_images_are_refused_with_the_fix() {
        let dir = std::env::temp_dir();
        let err = |path: PathBuf, readonly: bool| {
            DiskImage::open(&DiskConfig {
                path,
                readonly,
                serial: String::new(),
            })
            .unwrap_err()
            .to_string()
        };
        let missing = dir.join(format!("vmm-blk-{}-missing.img", std::process::id()));
        assert!(err(missing, false).contains("no such file; create the image first"));
        assert!(err(dir.clone(), false).contains("is a directory"));
        let empty = dir.join(format!("vmm-blk-{}-empty.img", std::process::id()));
        std::fs::write(&empty, b"").unwrap();
        assert!(err(empty.clone(), false).contains("less than one 512-byte sector"));
        std::fs::remove_file(empty).unwrap();
        // A second read-write open of a locked image.
        let (_disk, path) = image("locked", 1, false);
        assert!(err(path.clone(), false).contains("another process is using the image"));
        assert!(err(path.clone(), true).contains("another process is using the image"));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn ranges_must_be_whole_sectors_inside_the_disk() {
        assert_eq!(check_range(0, 4096, 8), Some(0));
        assert_eq!(check_range(4, 2048, 8), Some(2048));
        assert_eq!(check_range(4, 2560, 8), None, "past the end");
        assert_eq!(check_range(0, 100, 8), None, "not whole sectors");
        assert_eq!(check_range(u64::MAX, 512, 8), None, "overflow");
        assert_eq!(check_range(8, 0, 8), Some(4096), "empty at the end");
    }

    #[test]
    fn the_configuration_gives_capacity_seg_max_and_block_size() {
        let c = config_bytes(0x1234);
        assert_eq!(u64::from_le_bytes(c[0..8].try_into().unwrap()), 0x1234);
        assert_eq!(u32::from_le_bytes(c[12..16].try_into().unwrap()), 254);
        assert_eq!(u32::from_le_bytes(c[20..24].try_into().unwrap()), 512);
    }
}
