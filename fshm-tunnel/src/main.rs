//! `fshm-tunnel export PREFIX` / `fshm-tunnel import PREFIX`: see the crate docs.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "fshm-tunnel",
    version,
    about = "Mirror fshm streams to other hosts over Eclipse Zenoh",
    after_help = "Zenoh endpoints look like tcp/192.0.2.7:7447. Multicast scouting is off: \
give --listen on one side and --connect on the other. --config takes a Zenoh JSON5 \
configuration file (TLS, access control); --listen/--connect are applied on top of it."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args)]
struct Net {
    /// Zenoh endpoint to listen on (repeatable), e.g. tcp/127.0.0.1:7447
    #[arg(long)]
    listen: Vec<String>,
    /// Zenoh endpoint to connect to (repeatable), e.g. tcp/127.0.0.1:7447
    #[arg(long)]
    connect: Vec<String>,
    /// Zenoh configuration file (JSON5)
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Publish every stream whose name starts with PREFIX (now and later ones)
    Export {
        /// Name prefix, e.g. /sensors/
        prefix: String,
        #[command(flatten)]
        net: Net,
        /// How often /dev/shm is listed for new streams, in milliseconds
        #[arg(long, default_value_t = 100)]
        scan_ms: u64,
        /// How long a lossless ring waits for an importer that stopped acknowledging
        /// (link down, importer gone) before releasing bytes without it, in milliseconds
        #[arg(long, default_value_t = 30_000)]
        ack_patience_ms: u64,
    },
    /// Own a local read-only replica of every remote stream whose name starts with PREFIX
    Import {
        /// Name prefix, e.g. /sensors/
        prefix: String,
        /// Local prefix for the replicas (default: the same names)
        #[arg(long = "as")]
        as_prefix: Option<String>,
        #[command(flatten)]
        net: Net,
        /// How often exporters are asked for their streams, in milliseconds; a replica
        /// whose source gives no word for three such periods is marked stale
        #[arg(long, default_value_t = 1000)]
        resync_ms: u64,
        /// Smallest ring replica capacity in bytes (default: the source's capacity);
        /// local readers of a replica are lossy readers, a larger ring gives them slack
        #[arg(long, default_value_t = 0)]
        ring_min_capacity: u64,
        /// Replicas held at once at most (open ones, and closed ones still in /dev/shm);
        /// a stream beyond it is imported once one is gone
        #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
        max_streams: u64,
        /// Bytes of /dev/shm the replicas may take together at most, with K, M, G or T
        /// (default: half of /dev/shm's size): a ring replica counts its whole capacity,
        /// a linear one its length; a ring that does not fit is imported once there is
        /// room, a linear replica that reaches it stops (marked stale) until there is room
        #[arg(long, value_parser = fshm_tunnel::parse_size)]
        max_bytes: Option<u64>,
    },
}

fn main() {
    let cli = Cli::parse();
    let stop = Arc::new(AtomicBool::new(false));
    let r = match cli.cmd {
        Cmd::Export {
            prefix,
            net,
            scan_ms,
            ack_patience_ms,
        } => fshm_tunnel::zenoh_config(net.config.as_deref(), &net.listen, &net.connect)
            .and_then(fshm_tunnel::open_session)
            .and_then(|s| {
                let o = fshm_tunnel::export::ExportOptions {
                    prefix,
                    scan: Duration::from_millis(scan_ms.max(1)),
                    ack_patience: Duration::from_millis(ack_patience_ms),
                };
                fshm_tunnel::export::run(&s, &o, stop)
            }),
        Cmd::Import {
            prefix,
            as_prefix,
            net,
            resync_ms,
            ring_min_capacity,
            max_streams,
            max_bytes,
        } => {
            let max_bytes = max_bytes.unwrap_or_else(fshm_tunnel::default_max_bytes);
            let peers: Vec<&String> = net.connect.iter().chain(net.listen.iter()).collect();
            let source = format!(
                "zenoh:{}",
                peers.first().map(|s| s.as_str()).unwrap_or("config")
            );
            fshm_tunnel::zenoh_config(net.config.as_deref(), &net.listen, &net.connect)
                .and_then(fshm_tunnel::open_session)
                .and_then(|s| {
                    let o = fshm_tunnel::import::ImportOptions {
                        prefix,
                        as_prefix,
                        source,
                        resync: Duration::from_millis(resync_ms.max(10)),
                        stale_after: 3 * Duration::from_millis(resync_ms.max(10)),
                        reorder_limit: 32 << 20,
                        ring_min_capacity,
                        max_streams: usize::try_from(max_streams).unwrap_or(usize::MAX),
                        max_bytes,
                    };
                    fshm_tunnel::import::run(&s, &o, stop)
                })
        }
    };
    if let Err(e) = r {
        eprintln!("fshm-tunnel: {e}");
        std::process::exit(1);
    }
}
