//! `ferrofabric perf`: drives an NVMe/TCP namespace, or with `--iscsi` an iSCSI logical unit, with ff-perf
//! (spdk_nvme_perf's flags where they exist: `-q` depth, `-o` I/O size, `-w` pattern, `-t` seconds,
//! `-M`/`--rwmixread`) and prints the spdk_nvme_perf-style table, or the report as JSON with `--json`
//! (the same for both protocols). Exits non-zero on any I/O error or verify mismatch. Also owns the sock
//! flags the other host-side commands share.

use anyhow::{Result, bail};
use clap::Args;
use ff_blockdev::parse_size;
use ff_initiator::iscsi::Chap;
use ff_initiator::{DhchapOptions, HostOptions};
use ff_perf::{DEFAULT_INITIATOR, DEFAULT_ISCSI_TARGET, IscsiTarget, Pattern, PerfConfig};
use ff_sock::{Backend, GroupOptions};
use ff_target::config::DEFAULT_NQN;
use std::net::SocketAddr;

/// Sock layer options of the host side (reactor groups and every connection).
#[derive(Args, Debug, Clone, Default)]
pub struct SockArgs {
    /// Sock backend: epoll, poll or uring.
    #[arg(long = "sock")]
    backend: Option<Backend>,
    /// Receive pipe per connection, e.g. 64K; 0 turns it off.
    #[arg(long)]
    pipe_size: Option<String>,
    /// Reads at or above this size bypass the pipe, e.g. 4K.
    #[arg(long)]
    cutover: Option<String>,
    /// Sends at or above this size use MSG_ZEROCOPY, e.g. 4K; `off` never.
    #[arg(long)]
    zerocopy_threshold: Option<String>,
    /// SO_MARK on every connection (needs CAP_NET_ADMIN).
    #[arg(long)]
    mark: Option<u32>,
}

impl SockArgs {
    /// The group options these flags describe, over the defaults.
    pub fn group(&self) -> Result<GroupOptions> {
        let mut g = GroupOptions::default();
        if let Some(b) = self.backend {
            g.backend = b;
        }
        if let Some(p) = &self.pipe_size {
            g.pipe_size = parse_size(p)? as usize;
        }
        if let Some(c) = &self.cutover {
            g.cutover = parse_size(c)? as usize;
        }
        match self.zerocopy_threshold.as_deref() {
            None => {}
            Some("off" | "none") => {
                g.zerocopy_threshold = None;
                g.sock.zerocopy = false;
            }
            Some(t) => g.zerocopy_threshold = Some(parse_size(t)? as usize),
        }
        g.sock.mark = self.mark;
        Ok(g)
    }
}

/// NVMe/TCP host identity and DH-HMAC-CHAP credentials (nvme-cli's flag names), shared by perf, identify
/// and discover.
#[derive(Args, Debug, Clone, Default)]
pub struct HostAuthArgs {
    /// Host NQN (default: nqn.2014-08.org.nvmexpress:uuid:<machine id>). A DH-HMAC-CHAP secret is bound
    /// to it.
    #[arg(long)]
    hostnqn: Option<String>,
    /// DH-HMAC-CHAP host secret, `DHHC-1:<hh>:<base64>:` (as `nvme gen-dhchap-key` prints); used when the
    /// target asks this host to authenticate.
    #[arg(long, value_name = "DHHC-1:..")]
    dhchap_secret: Option<String>,
    /// DH-HMAC-CHAP controller secret: the target must prove it knows it (bidirectional).
    #[arg(long, value_name = "DHHC-1:..", requires = "dhchap_secret")]
    dhchap_ctrl_secret: Option<String>,
    /// TLS 1.3 with this pre-shared key, `NVMeTLSkey-1:<hh>:<base64>:` (as `nvme gen-tls-key` or
    /// `ferrofabric gen-tls-key` prints it): for a port that requires a secure channel.
    #[arg(long, value_name = "NVMeTLSkey-1:..")]
    psk: Option<String>,
    /// With --psk: seal and open TLS records in user space even where kernel TLS is available.
    #[arg(long, requires = "psk")]
    no_ktls: bool,
}

impl HostAuthArgs {
    /// The credentials these flags give (secrets checked here, so a typo fails before connecting).
    pub fn dhchap(&self) -> Result<Option<DhchapOptions>> {
        Ok(match &self.dhchap_secret {
            Some(s) => Some(DhchapOptions::parse(s, self.dhchap_ctrl_secret.as_deref())?),
            None => None,
        })
    }

    /// The TLS settings these flags give (the key checked here).
    pub fn tls(&self) -> Result<Option<ff_initiator::TlsOptions>> {
        Ok(match &self.psk {
            Some(p) => Some(ff_initiator::TlsOptions {
                psk: p.parse().map_err(|e| anyhow::anyhow!("--psk: {e}"))?,
                ktls: !self.no_ktls,
            }),
            None => None,
        })
    }

    /// `o` with the host NQN and credentials these flags give.
    pub fn apply(&self, o: HostOptions) -> Result<HostOptions> {
        Ok(HostOptions {
            hostnqn: self.hostnqn.clone().unwrap_or(o.hostnqn.clone()),
            dhchap: self.dhchap()?,
            tls: self.tls()?,
            ..o
        })
    }
}

/// Arguments of `ferrofabric perf`.
///
/// NVMe/TCP (default): `ferrofabric perf --addr 127.0.0.1:4420 --nqn NQN -q 32 -o 4K -w randread -t 10`.
/// iSCSI: `ferrofabric perf --iscsi --addr 127.0.0.1:3260 --target IQN --lun 0 -q 32 -o 4K -w randread -t 10`
/// (one session per `--queues`; `--hdgst`/`--ddgst` ask for CRC32C digests).
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    NVMe/TCP: ferrofabric perf --addr 127.0.0.1:4420 --nqn NQN -q 32 -o 4K -w randread -t 10\n  \
    iSCSI:    ferrofabric perf --iscsi --addr 127.0.0.1:3260 --target IQN --lun 0 -q 32 -o 4K -w randread -t 10\n\
    With --iscsi, each of --queues is one session (its own connection); the report and --json are the same \
    for both protocols (\"transport\" tells them apart).")]
pub struct PerfArgs {
    /// Target address [default: 127.0.0.1:4420, or 127.0.0.1:3260 with --iscsi].
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// Subsystem NQN (NVMe/TCP).
    #[arg(long, default_value = DEFAULT_NQN, conflicts_with = "iscsi")]
    nqn: String,
    /// Namespace (NVMe/TCP; default: the first active one).
    #[arg(long, conflicts_with = "iscsi")]
    nsid: Option<u32>,
    /// Drive an iSCSI logical unit instead of an NVMe/TCP namespace (same workloads and report).
    #[arg(long)]
    iscsi: bool,
    /// iSCSI TargetName.
    #[arg(long, requires = "iscsi", default_value = DEFAULT_ISCSI_TARGET)]
    target: String,
    /// iSCSI logical unit number.
    #[arg(long, requires = "iscsi", default_value_t = 0)]
    lun: u16,
    /// iSCSI InitiatorName we log in as.
    #[arg(long, requires = "iscsi", default_value = DEFAULT_INITIATOR)]
    initiator: String,
    /// iSCSI CHAP name (with --chap-secret); logs in with AuthMethod=CHAP.
    #[arg(long, requires_all = ["iscsi", "chap_secret"])]
    chap_user: Option<String>,
    /// iSCSI CHAP secret (visible to `ps`: prefer a dedicated test secret).
    #[arg(long, requires = "chap_user")]
    chap_secret: Option<String>,
    /// Mutual CHAP: the name the target must answer with (with --chap-target-secret).
    #[arg(long, requires_all = ["chap_user", "chap_target_secret"])]
    chap_target_user: Option<String>,
    /// Mutual CHAP: the target's secret.
    #[arg(long, requires = "chap_target_user")]
    chap_target_secret: Option<String>,
    /// Commands in flight per queue.
    #[arg(short = 'q', long = "queue-depth", default_value_t = 32)]
    queue_depth: u16,
    /// Bytes per I/O, e.g. 4096, 4K, 128K.
    #[arg(short = 'o', long = "io-size", default_value = "4096")]
    io_size: String,
    /// read, write, randread, randwrite, rw or randrw.
    #[arg(short = 'w', long = "pattern", default_value = "randread")]
    pattern: Pattern,
    /// Measured seconds.
    #[arg(short = 't', long = "time", default_value_t = 5.0)]
    seconds: f64,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Read percentage of rw/randrw.
    #[arg(short = 'M', long, default_value_t = 50)]
    rwmixread: u8,
    /// I/O queues (one connection each).
    #[arg(long, default_value_t = 1)]
    queues: u16,
    /// Reactor threads; queues are spread over them.
    #[arg(long, default_value_t = 1)]
    cores: usize,
    /// Pin reactor threads to these CPUs, comma separated.
    #[arg(long, value_delimiter = ',')]
    cpus: Vec<usize>,
    /// Header digest.
    #[arg(long)]
    hdgst: bool,
    /// Data digest.
    #[arg(long)]
    ddgst: bool,
    /// Write verify data, read every write back and check every read of a written block.
    #[arg(long)]
    verify: bool,
    /// Bound offsets to the first SIZE bytes of the namespace, e.g. 256M.
    #[arg(long)]
    size: Option<String>,
    /// Seed of offsets, mix and verify data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Reactors spin instead of blocking in the wait syscall.
    #[arg(long)]
    busy_poll: bool,
    /// Print the report as JSON instead of the table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    sock: SockArgs,
    #[command(flatten)]
    host: HostAuthArgs,
}

/// The run these arguments describe.
pub fn config(a: &PerfArgs) -> Result<PerfConfig> {
    let iscsi = a.iscsi.then(|| IscsiTarget {
        target: a.target.clone(),
        lun: a.lun,
        initiator: a.initiator.clone(),
        chap: a.chap_user.clone().map(|user| Chap {
            user,
            secret: a.chap_secret.clone().unwrap_or_default().into_bytes(),
            mutual: a
                .chap_target_user
                .clone()
                .map(|u| (u, a.chap_target_secret.clone().unwrap_or_default().into_bytes())),
        }),
    });
    if a.iscsi && (a.host.hostnqn.is_some() || a.host.dhchap_secret.is_some() || a.host.psk.is_some()) {
        bail!("--hostnqn, --dhchap-secret and --psk are NVMe/TCP options (iSCSI uses --initiator and --chap-*)");
    }
    let default_port = if a.iscsi { ff_initiator::iscsi::ISCSI_PORT } else { 4420 };
    let c = PerfConfig {
        addr: a.addr.unwrap_or(SocketAddr::from(([127, 0, 0, 1], default_port))),
        nqn: a.nqn.clone(),
        nsid: a.nsid,
        queue_depth: a.queue_depth,
        io_size: parse_size(&a.io_size)? as usize,
        pattern: a.pattern,
        rwmixread: a.rwmixread,
        seconds: a.seconds,
        warmup_seconds: a.warmup,
        queues: a.queues,
        cores: a.cores,
        hdgst: a.hdgst,
        ddgst: a.ddgst,
        verify: a.verify,
        size: a.size.as_deref().map(parse_size).transpose()?,
        group: a.sock.group()?,
        seed: a.seed,
        cpus: a.cpus.clone(),
        busy_poll: a.busy_poll,
        progress: !a.json,
        iscsi,
        hostnqn: a.host.hostnqn.clone(),
        dhchap: a.host.dhchap()?,
        tls: a.host.tls()?,
        ..PerfConfig::default()
    };
    c.validate().map_err(anyhow::Error::msg)?;
    Ok(c)
}

/// Runs perf and prints the result; errors and mismatches fail the command.
pub fn run(a: PerfArgs) -> Result<()> {
    let c = config(&a)?;
    let r = ff_perf::run(&c)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r.to_json())?);
    } else {
        print!("{}", r.render());
    }
    if r.errors > 0 {
        bail!("{} I/O error(s)", r.errors);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: PerfArgs,
    }

    fn parse(args: &[&str]) -> Result<PerfConfig> {
        let t = T::try_parse_from(std::iter::once("perf").chain(args.iter().copied()))?;
        config(&t.a)
    }

    #[test]
    fn spdk_style_flags_parse() {
        let c = parse(&[
            "--addr",
            "10.0.0.1:4421",
            "--nqn",
            "nqn.x",
            "-q",
            "128",
            "-o",
            "128K",
            "-w",
            "randrw",
            "-t",
            "3",
            "--warmup",
            "0.5",
            "--rwmixread",
            "70",
            "--queues",
            "4",
            "--cores",
            "2",
            "--hdgst",
            "--ddgst",
            "--verify",
            "--size",
            "64M",
            "--sock",
            "poll",
            "--pipe-size",
            "0",
            "--cutover",
            "4K",
            "--zerocopy-threshold",
            "off",
            "--mark",
            "7",
        ])
        .unwrap();
        assert_eq!(c.addr, "10.0.0.1:4421".parse().unwrap());
        assert_eq!((c.nqn.as_str(), c.queue_depth, c.io_size), ("nqn.x", 128, 128 * 1024));
        assert_eq!((c.pattern, c.rwmixread, c.seconds, c.warmup_seconds), (Pattern::RandRw, 70, 3.0, 0.5));
        assert_eq!((c.queues, c.cores), (4, 2));
        assert!(c.hdgst && c.ddgst && c.verify);
        assert_eq!(c.size, Some(64 << 20));
        assert_eq!(c.group.backend, Backend::Poll);
        assert_eq!((c.group.pipe_size, c.group.cutover, c.group.zerocopy_threshold), (0, 4096, None));
        assert!(!c.group.sock.zerocopy);
        assert_eq!(c.group.sock.mark, Some(7));
    }

    #[test]
    fn iscsi_flags_parse() {
        let c =
            parse(&["--iscsi", "--target", "iqn.x:t", "--lun", "3", "-q", "16", "-o", "128K", "-w", "read"]).unwrap();
        assert_eq!(c.addr, "127.0.0.1:3260".parse().unwrap());
        let t = c.iscsi.unwrap();
        assert_eq!((t.target.as_str(), t.lun, t.initiator.as_str(), t.chap), ("iqn.x:t", 3, DEFAULT_INITIATOR, None));
        assert_eq!((c.queue_depth, c.io_size, c.pattern), (16, 128 * 1024, Pattern::Read));
        let c = parse(&[
            "--iscsi",
            "--addr",
            "10.0.0.2:3261",
            "--initiator",
            "iqn.me",
            "--chap-user",
            "u",
            "--chap-secret",
            "s3cret",
            "--chap-target-user",
            "t",
            "--chap-target-secret",
            "t-secret",
        ])
        .unwrap();
        assert_eq!(c.addr, "10.0.0.2:3261".parse().unwrap());
        let t = c.iscsi.unwrap();
        assert_eq!(t.target, DEFAULT_ISCSI_TARGET);
        let chap = t.chap.unwrap();
        assert_eq!((chap.user.as_str(), chap.secret.as_slice()), ("u", &b"s3cret"[..]));
        assert_eq!(chap.mutual, Some(("t".into(), b"t-secret".to_vec())));
        assert!(parse(&["--target", "iqn.x"]).is_err(), "--target needs --iscsi");
        assert!(parse(&["--iscsi", "--nqn", "nqn.x"]).is_err());
        assert!(parse(&["--iscsi", "--chap-user", "u"]).is_err(), "a CHAP name needs its secret");
        assert!(parse(&[]).unwrap().iscsi.is_none());
    }

    #[test]
    fn defaults_and_refusals() {
        let c = parse(&[]).unwrap();
        assert_eq!((c.queue_depth, c.io_size, c.pattern), (32, 4096, Pattern::RandRead));
        assert_eq!(c.nqn, DEFAULT_NQN);
        assert!(parse(&["-w", "sideways"]).is_err());
        assert!(parse(&["-o", "1000"]).is_err());
        assert!(parse(&["-q", "0"]).is_err());
        assert!(parse(&["-t", "0"]).is_err());
        assert!(parse(&["--rwmixread", "101"]).is_err());
        assert!(parse(&["--sock", "kqueue"]).is_err());
    }

    #[test]
    fn dhchap_flags_parse_and_refusals() {
        // nvme gen-dhchap-key style secrets: 32 zero bytes, then 32 bytes of 0x01 (each key, then its CRC-32 LE).
        let host = "DHHC-1:00:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACtVQoZ:";
        let ctrl = "DHHC-1:00:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQHMnzFi:";
        let c = parse(&["--hostnqn", "nqn.h", "--dhchap-secret", host, "--dhchap-ctrl-secret", ctrl]).unwrap();
        assert_eq!(c.hostnqn.as_deref(), Some("nqn.h"));
        let d = c.dhchap.unwrap();
        assert_eq!(d.secret.to_dhhc_string(), host);
        assert_eq!(d.ctrl_secret.map(|s| s.to_dhhc_string()).as_deref(), Some(ctrl));
        let c = parse(&["--dhchap-secret", host]).unwrap();
        assert!(c.dhchap.unwrap().ctrl_secret.is_none() && c.hostnqn.is_none());
        assert!(parse(&[]).unwrap().dhchap.is_none());
        assert!(parse(&["--dhchap-ctrl-secret", ctrl]).is_err(), "a controller secret needs a host secret");
        let e = parse(&["--dhchap-secret", "DHHC-1:00:AAAA:"]).unwrap_err().to_string();
        assert!(e.contains("host secret"), "{e}");
        assert!(parse(&["--iscsi", "--dhchap-secret", host]).is_err(), "NVMe/TCP only");
    }
}
