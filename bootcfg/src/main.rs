//! `critmem-boot`: the command line. Parses arguments into a
//! [`critmem_boot::Config`] and hands it to [`critmem_boot::run`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use critmem_boot::layout::Flavour;
use critmem_boot::plan::PlanOptions;
use critmem_boot::validate::{Mode, PoolRequest};
use critmem_boot::{Action, Config};

/// Sets critmem's boot parameters through the bootloader, installs its host
/// files, and checks kernel, command line and live pool.
#[derive(Parser, Debug)]
#[command(name = "critmem-boot", version)]
struct Cli {
    /// Act on the system rooted here instead of the running one (every read
    /// of /proc, /sys, /etc and /boot goes under it; bootloader tools of the
    /// running system are not run).
    #[arg(long, global = true, default_value = "/", value_name = "DIR")]
    root: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Print the kernel parameters and a diff of every file change; change nothing.
    Plan {
        #[command(flatten)]
        pool: PoolArgs,
        /// `text`: parameters, bootloader and diffs, for people. `cmdline`:
        /// only the kernel parameters, on one line, for scripts (no
        /// bootloader is needed under --root).
        #[arg(long, value_enum, default_value_t = FormatArg::Text)]
        format: FormatArg,
    },
    /// Write the bootloader configuration and host files.
    Apply(PoolArgs),
    /// Undo exactly what apply did.
    Remove {
        /// Only print what would be done.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        boot: BootArgs,
    },
    /// Compare configured, booted (/proc/cmdline) and live (/proc/critmem).
    Status,
    /// Does the running kernel support independent memory configuration, and
    /// can critmem.ko load under its module-signature policy?
    Check,
}

#[derive(Args, Debug)]
struct PoolArgs {
    /// Pool size, with K/M/G/T suffix (16G, 512M).
    #[arg(long)]
    size: String,
    /// Alignment of the pool (reserve mode): a power of two >= 4K.
    /// Default: 1G for pools of 1 GiB or more, else 2M.
    #[arg(long)]
    align: Option<String>,
    /// Where the pool comes from.
    #[arg(long, value_enum, default_value_t = ModeArg::Reserve)]
    mode: ModeArg,
    /// Physical address of the pool (memmap mode), in System RAM.
    #[arg(long, value_name = "ADDR")]
    base: Option<String>,
    /// Allow a pool that leaves the host less than max(2 GiB, 10% of RAM).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    boot: BootArgs,
}

#[derive(Args, Debug)]
struct BootArgs {
    /// Use this bootloader flavour instead of detecting it.
    #[arg(long, value_enum)]
    bootloader: Option<FlavourArg>,
    /// Do not run update-grub, grub-mkconfig, grubby or kernel-install.
    #[arg(long)]
    no_update: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ModeArg {
    /// reserve_mem=<size>:<align>:critmem
    Reserve,
    /// memmap=<size>$<base> critmem.base= critmem.size=
    Memmap,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    /// Parameters, bootloader and file diffs.
    Text,
    /// Only the kernel parameters, space-separated, on one line.
    Cmdline,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FlavourArg {
    DebianGrub,
    RhelGrubby,
    SystemdBoot,
}

impl From<FlavourArg> for Flavour {
    fn from(f: FlavourArg) -> Self {
        match f {
            FlavourArg::DebianGrub => Flavour::DebianGrub,
            FlavourArg::RhelGrubby => Flavour::RhelGrubby,
            FlavourArg::SystemdBoot => Flavour::SystemdBoot,
        }
    }
}

impl BootArgs {
    fn options(&self) -> PlanOptions {
        PlanOptions {
            bootloader: self.bootloader.map(Into::into),
            no_update: self.no_update,
        }
    }
}

impl PoolArgs {
    fn request(&self) -> PoolRequest {
        PoolRequest {
            size: self.size.clone(),
            align: self.align.clone(),
            mode: match self.mode {
                ModeArg::Reserve => Mode::Reserve,
                ModeArg::Memmap => Mode::Memmap,
            },
            base: self.base.clone(),
            force: self.force,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (options, action) = match &cli.command {
        Cmd::Plan { pool, format } => (
            pool.boot.options(),
            match format {
                FormatArg::Text => Action::Plan(pool.request()),
                FormatArg::Cmdline => Action::PlanCmdline(pool.request()),
            },
        ),
        Cmd::Apply(p) => (p.boot.options(), Action::Apply(p.request())),
        Cmd::Remove { dry_run, boot } => (boot.options(), Action::Remove { dry_run: *dry_run }),
        Cmd::Status => (PlanOptions::default(), Action::Status),
        Cmd::Check => (PlanOptions::default(), Action::Check),
    };
    let config = Config {
        root: cli.root,
        options,
        action,
    };
    match critmem_boot::run(&config, &mut std::io::stdout().lock()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("critmem-boot: error: {e}");
            ExitCode::from(2)
        }
    }
}
