//! `cmtool`: the test tool run inside the emulated host (and the nested
//! guest) by the scenarios and the benchmarks. Each subcommand lives in its
//! own module and prints `key=value` lines that scenarios parse.

mod access;
mod alloc_many;
mod args;
mod churn;
mod concurrent;
mod critmem_dev;
mod cut;
mod exit_port;
mod fault_kernel;
mod file_gpa;
mod kvm_selftest;
mod map_file;
mod memwrite;
mod mktap;
mod pattern;
mod phys;
mod physscan;
mod procs;
mod recycle;
mod sharing;
mod signals;
mod size;
mod tsc;
mod zero_race;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use args::num;

#[derive(Debug, Parser)]
#[command(name = "cmtool", about = "critmem's test tool (see tests/README.md)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a 12-byte real-mode guest on /dev/kvm.
    KvmSelftest,
    /// End the emulated host's run: write VALUE to QEMU's isa-debug-exit port.
    ExitPort { value: u8 },
    /// The INFO ioctl on a fresh open file of /dev/critmem.
    Info,
    /// ALLOC a slice, and optionally map, check, fill and hold it.
    Alloc(critmem_dev::AllocArgs),
    /// mmap /dev/critmem, with or without ALLOC first.
    Mmap(critmem_dev::MmapArgs),
    /// Map a slice at a chosen alignment, touch every page, count faults.
    Touch(critmem_dev::TouchArgs),
    /// An arbitrary ioctl number on /dev/critmem.
    Ioctl(critmem_dev::IoctlArgs),
    /// Print one value of /proc/critmem (of the pool, or of a process's slice).
    MapFile(map_file::MapFileArgs),
    /// Cut, move or resize part of a huge-mapped slice; check its data.
    Cut(cut::CutArgs),
    /// Write the tiny ELF kernel that triple-faults.
    FaultKernel {
        /// Where to write it.
        #[arg(long)]
        out: String,
    },
    /// Print the physical address of FILE's first page once read (in a
    /// guest: the guest-physical address virtio-blk DMA'd it to).
    FileGpa {
        /// The file.
        file: String,
    },
    /// Read LEN (at most 4096) bytes of physical memory (/dev/mem or /proc/kcore).
    Physread {
        #[arg(value_parser = num)]
        addr: u64,
        #[arg(value_parser = num)]
        len: u64,
        /// The path: /dev/mem, /proc/kcore, or /dev/mem then /proc/kcore on EPERM.
        #[arg(long, value_enum, default_value = "auto")]
        via: phys::Via,
    },
    /// Check that physical memory holds PATTERN.
    Physcheck {
        #[arg(value_parser = num)]
        addr: u64,
        #[arg(value_parser = num)]
        len: u64,
        pattern: String,
        /// The path: /dev/mem, /proc/kcore, or /dev/mem then /proc/kcore on EPERM.
        #[arg(long, value_enum, default_value = "auto")]
        via: phys::Via,
    },
    /// Write PATTERN into physical memory (through /dev/mem).
    Physfill {
        #[arg(value_parser = num)]
        addr: u64,
        #[arg(value_parser = num)]
        len: u64,
        pattern: String,
    },
    /// Count the aligned 32-bit VALUEs in physical memory.
    Physscan {
        #[arg(value_parser = num)]
        addr: u64,
        #[arg(value_parser = num)]
        len: u64,
        #[arg(value_parser = num)]
        value: u64,
        /// The path: /dev/mem, /proc/kcore, or /dev/mem then /proc/kcore on EPERM.
        #[arg(long, value_enum, default_value = "auto")]
        via: phys::Via,
    },
    /// Write N MiB of fresh memory once and print the rate (guest side).
    Memwrite {
        /// MiB to write, or `auto` for most of MemAvailable.
        #[arg(long, default_value = "auto")]
        mb: String,
    },
    /// Take N MiB, mlock it and sleep (host-side pressure).
    Hog {
        #[arg(long, value_parser = num)]
        mb: u64,
        /// Stop after this many seconds instead of when killed.
        #[arg(long, value_parser = num)]
        seconds: Option<u64>,
    },
    /// Write BYTES of PATTERN to standard output (a network test's data,
    /// whose sha256 either end can compute).
    Stream {
        pattern: String,
        #[arg(value_parser = num)]
        bytes: u64,
    },
    /// Make a persistent tap (or tun) that one user may attach to.
    Mktap(mktap::MktapArgs),
    /// Measure this machine's TSC rate in kHz.
    TscKhz,
    /// Print a size in bytes (or whole MiB), read with the one size grammar.
    Size(size::SizeArgs),
    /// SIGKILL slice holders while zeroing and while mapped, in cycles.
    Churn(churn::ChurnArgs),
    /// Share a slice with a forked child that outlives the parent.
    ForkShare(sharing::ForkShareArgs),
    /// Send a slice's file over a unix socket (SCM_RIGHTS), then exit.
    ScmSend(sharing::ScmSendArgs),
    /// Receive a slice's file over a unix socket and read its data.
    ScmRecv(sharing::ScmRecvArgs),
    /// ALLOC from many threads at once; check for overlaps.
    ConcurrentAlloc(concurrent::ConcurrentArgs),
    /// Hold many small slices, one per file, until killed.
    HoldMany(concurrent::HoldManyArgs),
    /// Move a 1 GiB mapping, free it, recycle it; the old owner sees nothing.
    Recycle(recycle::RecycleArgs),
    /// A dirty ALLOC in one thread while another faults, reads its maps, mmaps.
    ZeroRace(zero_race::ZeroRaceArgs),
    /// ALLOC under a SIGALRM storm, with or without SA_RESTART.
    AllocStorm(signals::AllocStormArgs),
    /// Drop to a user and group id, then run a cmtool subcommand.
    RunAs(access::RunAsArgs),
    /// ALLOC with the request in a read-only page (EFAULT), then INFO and ALLOC again.
    AllocEfault(access::AllocEfaultArgs),
    /// Hold N files, each with a slice of its own ALLOC.
    AllocMany(alloc_many::AllocManyArgs),
}

/// An error and its cause on one line (the errors cmtool reports have at
/// most one cause).
pub(crate) fn describe(e: impl std::error::Error) -> String {
    match e.source() {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::KvmSelftest => kvm_selftest::run(),
        Command::ExitPort { value } => exit_port::run(value),
        Command::Info => critmem_dev::info(),
        Command::Alloc(a) => critmem_dev::alloc(&a),
        Command::Mmap(a) => critmem_dev::mmap(&a),
        Command::Touch(a) => critmem_dev::touch(&a),
        Command::Ioctl(a) => critmem_dev::ioctl(&a),
        Command::MapFile(a) => map_file::run(&a),
        Command::Cut(a) => cut::run(&a),
        Command::FaultKernel { out } => fault_kernel::run(&out),
        Command::Physread { addr, len, via } => phys::read(addr, len, via),
        Command::FileGpa { file } => file_gpa::run(&file),
        Command::Physcheck {
            addr,
            len,
            pattern,
            via,
        } => phys::check(addr, len, &pattern, via),
        Command::Physfill { addr, len, pattern } => phys::fill(addr, len, &pattern),
        Command::Physscan {
            addr,
            len,
            value,
            via,
        } => physscan::run(addr, len, value, via),
        Command::Memwrite { mb } => memwrite::memwrite(&mb),
        Command::Hog { mb, seconds } => memwrite::hog(mb, seconds),
        Command::Stream { pattern, bytes } => pattern::stream(&pattern, bytes),
        Command::Mktap(a) => mktap::run(&a),
        Command::TscKhz => tsc::run(),
        Command::Size(a) => size::run(&a),
        Command::Churn(a) => churn::run(&a),
        Command::ForkShare(a) => sharing::fork_share(&a),
        Command::ScmSend(a) => sharing::scm_send(&a),
        Command::ScmRecv(a) => sharing::scm_recv(&a),
        Command::ConcurrentAlloc(a) => concurrent::concurrent(&a),
        Command::HoldMany(a) => concurrent::hold_many(&a),
        Command::Recycle(a) => recycle::run(&a),
        Command::ZeroRace(a) => zero_race::run(&a),
        Command::AllocStorm(a) => signals::run(&a),
        Command::RunAs(a) => access::run_as(&a),
        Command::AllocEfault(a) => access::alloc_efault(&a),
        Command::AllocMany(a) => alloc_many::run(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cmtool: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn scenario_command_lines_parse() {
        for line in [
            "cmtool alloc --size 16M --align 2M --verify-zero --pattern seq:0x1234abcd00000000 --hold",
            "cmtool alloc --size 4K --expect EINVAL",
            "cmtool alloc --size 1M --again 1M",
            "cmtool mmap --size 1M --offset 4K --alloc 2M --private --expect EINVAL",
            "cmtool mmap --size 1M --readonly --hold",
            "cmtool touch --size 1G --align 1G --va-align 1G --va-offset 2M --write",
            "cmtool touch --size 1G --no-alloc --natural --write",
            "cmtool ioctl --cmd 0xce03 --expect ENOTTY",
            "cmtool map-file free",
            "cmtool map-file --slice-of 83 start",
            "cmtool cut --size 1G --align 1G --va-align 1G --op munmap --at 512M --forge --expect EINVAL",
            "cmtool cut --size 1G --op mremap-move --to-va-offset 4K --len 2M",
            "cmtool fault-kernel --out /tmp/f.elf",
            "cmtool physcheck 0x40000000 16M seq:0x1",
            "cmtool physscan 0x40000000 512M 0xdeadbeef",
            "cmtool physread 0x1000 4",
            "cmtool physread --via devmem 0x40000000 4",
            "cmtool physcheck --via kcore 0x40000000 4K 0",
            "cmtool memwrite --mb auto",
            "cmtool hog --mb 100 --seconds 5",
            "cmtool tsc-khz",
            "cmtool size --in-mib -- 512M",
            "cmtool size 0x40000000",
            "cmtool churn --cycles 100 --size 256M",
            "cmtool fork-share --size 64M --seed 0x1234 --go /tmp/go",
            "cmtool scm-send --socket /tmp/s --size 64M --seed 0x1234",
            "cmtool scm-recv --socket /tmp/s --seed 0x1234 --go /tmp/go",
            "cmtool concurrent-alloc --threads 16 --rounds 40 --sizes 4K,2M,6M --aligns 0,4M",
            "cmtool hold-many --count 256 --sizes 2M,4K --align 2M --release-odd --refill 128",
            "cmtool recycle --go /tmp/go",
            "cmtool zero-race --size 2G --op same-file,anon,maps,other-file",
            "cmtool alloc-storm --size 1G --interval-us 1000 --restart",
            "cmtool run-as --uid 1000 --gid 1000 -- alloc --size 4M --info --hold",
            "cmtool run-as --uid 1000 --gid 1000 -- map-file --slice-of 1 size",
            "cmtool alloc --size 4M --readonly --expect EBADF",
            "cmtool alloc-efault --size 4M",
            "cmtool alloc-many --count 100 --size 4K --align 2M --hold",
        ] {
            Cli::try_parse_from(line.split_whitespace()).unwrap_or_else(|e| panic!("{line}: {e}"));
        }
        assert!(
            Cli::try_parse_from(["cmtool", "alloc"]).is_err(),
            "--size is required"
        );
        assert!(Cli::try_parse_from(["cmtool", "touch", "--size", "lots"]).is_err());
    }
}
