//! Test support: two throw-away network namespaces joined by a multi-queue
//! veth pair whose receive path runs through NAPI, so that sockets in them
//! report a real `SO_INCOMING_NAPI_ID` and a meaningful `SO_INCOMING_CPU`.
//!
//! This crate owns the lifecycle of those namespaces (creation with `ip`,
//! offload and XPS configuration, teardown on drop) and a few helpers tests
//! need around them (running code inside a namespace, pinning threads,
//! reading the incoming NAPI id / CPU of a socket).
//!
//! # What it takes for veth to report NAPI ids (measured on Linux 6.18)
//!
//! * A plain veth delivers through `netif_rx` (the per-CPU backlog), so every
//!   socket reports NAPI id 0. veth only switches a receive queue to its own
//!   NAPI instance when GRO (or XDP) is enabled on the *receiving* device.
//! * GRO alone is not enough for TCP: veth only queues an skb to the peer's
//!   NAPI ring when the skb is "eligible for GRO", and a TCP skb coming from a
//!   *sending* device with TSO enabled is not (it is already a super-packet).
//!   So TSO must be off on the sending end. With GRO on + TSO off on both ends
//!   both directions are NAPI-backed; busy-poll sysctls and threaded NAPI are
//!   irrelevant for the id being non-zero.
//! * The receive queue (hence the NAPI id) is the sender's tx queue index.
//!   Without XPS that is a per-flow hash, i.e. random per connection. This
//!   crate installs an XPS map (`queues/tx-N/xps_cpus`) on both ends so that
//!   a packet sent from CPU `c` always uses tx queue [`VethPair::queue_for_cpu`]
//!   and lands on the peer's rx queue with the same index: a client thread
//!   pinned to a CPU deterministically picks the NAPI id.
//! * With the default (non-threaded) NAPI the poll runs in the softirq of the
//!   CPU that transmitted, so `SO_INCOMING_CPU` equals the sender's CPU. With
//!   threaded NAPI (`/sys/class/net/<dev>/threaded` = 1) the NAPI ids are the
//!   same but the incoming CPU is wherever the `napi/<dev>-<id>` kthread ran.
//! * Toggling GRO re-creates the NAPI instances, which get fresh ids; ids are
//!   therefore only comparable within one [`VethPair`] after construction.

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;

use anyhow::{Context, bail, ensure};
use rustix::thread::CpuSet;

/// `SO_INCOMING_NAPI_ID` (asm-generic value; same on x86_64 and aarch64).
const SO_INCOMING_NAPI_ID: libc::c_int = 56;

/// Legacy ethtool commands from `<linux/ethtool.h>`. The legacy per-feature
/// commands are used instead of `ETHTOOL_SFEATURES` because they need no
/// feature-name string table lookup, and the kernel maps `ETHTOOL_STSO` to
/// the whole `NETIF_F_ALL_TSO` set (tso, tso6, ecn, mangleid, accecn), which
/// is exactly the set veth checks.
const ETHTOOL_GTSO: u32 = 0x1e;
const ETHTOOL_STSO: u32 = 0x1f;
const ETHTOOL_GGRO: u32 = 0x2b;
const ETHTOOL_SGRO: u32 = 0x2c;

/// `struct ethtool_value` from `<linux/ethtool.h>`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// Where `ip netns` keeps the bind-mounted namespace handles.
const NETNS_RUN_DIR: &str = "/var/run/netns";

/// Per-process counter that, with the pid, makes names unique so tests in the
/// same binary and in concurrently running binaries never collide.
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Checks whether this process can build a [`VethPair`]: it must be root and
/// the iproute2 `ip` binary must run. Tests should skip loudly
/// (`eprintln!("SKIP: ...")`) with the returned reason when this fails.
pub fn available() -> Result<(), String> {
    let euid = rustix::process::geteuid();
    if !euid.is_root() {
        return Err(format!("network namespaces need root (running as euid {})", euid.as_raw()));
    }
    match Command::new("ip").arg("-V").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => return Err(format!("`ip -V` failed with {}", out.status)),
        Err(e) => return Err(format!("iproute2 `ip` is not runnable: {e}")),
    }
    if !Path::new("/proc/self/ns/net").exists() {
        return Err("kernel without network namespace support".to_string());
    }
    Ok(())
}

/// One end of a [`VethPair`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Namespace `<prefix>-...-a`, address `10.201.N.1`.
    A,
    /// Namespace `<prefix>-...-b`, address `10.201.N.2`.
    B,
}

/// The offload state of one veth end, as read back through `SIOCETHTOOL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offloads {
    /// Generic receive offload; needed for veth to use NAPI at all.
    pub gro: bool,
    /// TCP segmentation offload; must be off on the sender for NAPI delivery.
    pub tso: bool,
}

/// Per-side names and address.
#[derive(Debug, Clone)]
struct End {
    netns: String,
    ifname: String,
    addr: Ipv4Addr,
}

/// Two network namespaces joined by a veth pair with `queues` rx/tx queues on
/// each end, GRO on and TSO off on both ends (so receive goes through NAPI),
/// an XPS map from CPU to tx queue, addresses `10.201.N.1/24` (a) and
/// `10.201.N.2/24` (b), and `lo` up in both. Dropping it deletes both
/// namespaces, which also destroys the veth; this runs on panic too.
#[derive(Debug)]
pub struct VethPair {
    a: End,
    b: End,
    queues: u32,
    /// CPUs this process may run on, in order; index `i` maps to tx queue
    /// `i % queues` via XPS.
    cpus: Vec<usize>,
}

impl VethPair {
    /// Creates the namespaces `<prefix>-<pid>-<n>-a` / `-b` and the veth
    /// between them. `prefix` must be non-empty ASCII alphanumerics, `-` or
    /// `_`; `queues` must be at least 1.
    pub fn new(prefix: &str, queues: u32) -> anyhow::Result<VethPair> {
        ensure!(
            !prefix.is_empty()
                && prefix.len() <= 64
                && prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "invalid namespace prefix {prefix:?}"
        );
        ensure!((1..=256).contains(&queues), "queues must be 1..=256, got {queues}");
        available().map_err(anyhow::Error::msg)?;

        let pid = std::process::id();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // The subnet only has to be unique per pair for readable captures; the
        // namespaces are isolated, so reuse after 254 pairs is harmless.
        let net = (n % 254 + 1) as u8;
        // Interface names are capped at 15 bytes (IFNAMSIZ - 1), so they do not
        // embed the prefix; pid (<= 0x400000) and the masked counter keep them
        // <= 14 bytes and unique even if the kernel ever staged them in the
        // caller's namespace.
        let tag = format!("ff{pid:x}x{:x}", n & 0xffff);
        let end = |side: &str, host: u8| End {
            netns: format!("{prefix}-{pid}-{n}-{side}"),
            ifname: format!("{tag}{side}"),
            addr: Ipv4Addr::new(10, 201, net, host),
        };
        let cpus = allowed_cpus().context("sched_getaffinity")?;
        ensure!(!cpus.is_empty(), "no CPU in this process's affinity mask");

        // Construct the guard first so that any failure below tears down
        // whatever was already created.
        let pair = VethPair { a: end("a", 1), b: end("b", 2), queues, cpus };
        pair.setup()?;
        Ok(pair)
    }

    fn setup(&self) -> anyhow::Result<()> {
        let q = self.queues.to_string();
        let (a, b) = (&self.a, &self.b);
        // A leftover from a crashed run with the same pid would make `add` fail.
        for e in [a, b] {
            delete_netns(&e.netns);
            ip(&["netns", "add", &e.netns])?;
        }
        // Names are validated/generated without whitespace, so splitting a
        // readable command line is safe.
        let link = format!(
            "link add {ia} numtxqueues {q} numrxqueues {q} netns {na} \
             type veth peer name {ib} numtxqueues {q} numrxqueues {q} netns {nb}",
            ia = a.ifname,
            na = a.netns,
            ib = b.ifname,
            nb = b.netns,
        );
        ip(&link.split_whitespace().collect::<Vec<_>>())?;
        for e in [a, b] {
            let cidr = format!("{}/24", e.addr);
            ip(&["-n", &e.netns, "addr", "add", &cidr, "dev", &e.ifname])?;
            ip(&["-n", &e.netns, "link", "set", "lo", "up"])?;
            ip(&["-n", &e.netns, "link", "set", &e.ifname, "up"])?;
        }
        for side in [Side::A, Side::B] {
            let ifname = self.end(side).ifname.clone();
            self.in_ns(side, move || -> io::Result<()> {
                // GRO on the receiver makes veth deliver via NAPI; TSO off on
                // the sender makes TCP skbs eligible for that path. Both ends
                // play both roles, so set both on both.
                let sock = ethtool_socket()?;
                ethtool_value(&sock, &ifname, ETHTOOL_SGRO, 1)?;
                ethtool_value(&sock, &ifname, ETHTOOL_STSO, 0)?;
                Ok(())
            })
            .with_context(|| format!("configuring offloads of {side:?}"))?;
            let got = self.offloads(side)?;
            ensure!(got == Offloads { gro: true, tso: false }, "offloads of {side:?} did not stick: {got:?}");
            // The kernel refuses XPS on single-queue devices, and there is
            // nothing to steer there anyway.
            if self.queues > 1 {
                self.install_xps(side)?;
            }
        }
        Ok(())
    }

    /// Writes one XPS mask per tx queue. sysfs only shows the devices of the
    /// namespace it was mounted in, so this goes through `ip netns exec`,
    /// which mounts a private sysfs for the target namespace.
    fn install_xps(&self, side: Side) -> anyhow::Result<()> {
        let e = self.end(side);
        let mut script = String::from("set -e");
        for q in 0..self.queues {
            let mask = cpumask_string(
                self.cpus.iter().enumerate().filter(|(i, _)| *i as u32 % self.queues == q).map(|(_, &c)| c),
            );
            script.push_str(&format!("; echo {mask} > /sys/class/net/{}/queues/tx-{q}/xps_cpus", e.ifname));
        }
        run(Command::new("ip").args(["netns", "exec", &e.netns, "sh", "-c", &script]))
            .with_context(|| format!("installing XPS map on {side:?}"))
    }

    fn end(&self, side: Side) -> &End {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    /// Address of the veth end in namespace a (`10.201.N.1`).
    pub fn addr_a(&self) -> IpAddr {
        IpAddr::V4(self.a.addr)
    }

    /// Address of the veth end in namespace b (`10.201.N.2`).
    pub fn addr_b(&self) -> IpAddr {
        IpAddr::V4(self.b.addr)
    }

    /// Address of the veth end on `side`.
    pub fn addr(&self, side: Side) -> IpAddr {
        IpAddr::V4(self.end(side).addr)
    }

    /// Name of the namespace on `side` (usable with `ip netns exec`).
    pub fn netns_name(&self, side: Side) -> &str {
        &self.end(side).netns
    }

    /// Name of the veth interface on `side`, inside its namespace.
    pub fn ifname(&self, side: Side) -> &str {
        &self.end(side).ifname
    }

    /// Number of rx (and tx) queues on each end.
    pub fn queues(&self) -> u32 {
        self.queues
    }

    /// The CPUs this pair's XPS map covers: the process's affinity mask at
    /// construction time.
    pub fn cpus(&self) -> &[usize] {
        &self.cpus
    }

    /// The tx queue (and thus the peer's rx queue / NAPI instance) that XPS
    /// selects for packets a socket first transmits from `cpu`; `None` for a
    /// CPU outside [`VethPair::cpus`], which falls back to a flow hash.
    pub fn queue_for_cpu(&self, cpu: usize) -> Option<u32> {
        self.cpus.iter().position(|&c| c == cpu).map(|i| i as u32 % self.queues)
    }

    /// Reads GRO/TSO state of the veth on `side` back through `SIOCETHTOOL`.
    pub fn offloads(&self, side: Side) -> io::Result<Offloads> {
        let ifname = self.end(side).ifname.clone();
        self.in_ns(side, move || {
            let sock = ethtool_socket()?;
            Ok(Offloads {
                gro: ethtool_value(&sock, &ifname, ETHTOOL_GGRO, 0)? != 0,
                tso: ethtool_value(&sock, &ifname, ETHTOOL_GTSO, 0)? != 0,
            })
        })
    }

    /// Runs `f` on a new thread that has joined namespace a and returns its
    /// result; a panic in `f` is propagated.
    pub fn in_a<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.in_ns(Side::A, f)
    }

    /// Runs `f` on a new thread that has joined namespace b and returns its
    /// result; a panic in `f` is propagated.
    pub fn in_b<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.in_ns(Side::B, f)
    }

    /// Runs `f` on a new thread that has joined the namespace on `side`.
    pub fn in_ns<T: Send + 'static>(&self, side: Side, f: impl FnOnce() -> T + Send + 'static) -> T {
        match self.spawn_in(side, f).join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Spawns (without joining) a thread in namespace a running `f`, e.g. a
    /// server that clients in namespace b talk to concurrently.
    pub fn spawn_in_a<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
        self.spawn_in(Side::A, f)
    }

    /// Spawns (without joining) a thread in namespace b running `f`.
    pub fn spawn_in_b<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
        self.spawn_in(Side::B, f)
    }

    /// Spawns (without joining) a thread in the namespace on `side`. The
    /// namespace handle is opened before spawning, so the thread still gets
    /// in even if the pair is dropped before it is scheduled; it panics only
    /// if `setns` itself fails.
    pub fn spawn_in<T: Send + 'static>(&self, side: Side, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
        let path = netns_path(&self.end(side).netns);
        let handle = File::open(&path).unwrap_or_else(|e| panic!("opening namespace {}: {e}", path.display()));
        std::thread::Builder::new()
            .name(format!("netns-{side:?}"))
            .spawn(move || {
                enter_netns(&handle).unwrap_or_else(|e| {
                    panic!("setns({}) failed: {e}", path.display());
                });
                drop(handle);
                f()
            })
            .expect("spawning namespace thread")
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting a namespace destroys the veth end in it, and with it the
        // peer. Threads still inside keep the namespace alive until they exit,
        // but the name is gone immediately, so reuse is safe.
        for e in [&self.a, &self.b] {
            delete_netns(&e.netns);
        }
    }
}

fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

/// Deletes a named namespace if it exists; failures are reported but not
/// fatal because this runs from `Drop`, possibly during a panic.
fn delete_netns(name: &str) {
    if netns_path(name).exists()
        && let Err(e) = ip(&["netns", "del", name])
    {
        eprintln!("ff-netns: could not delete namespace {name}: {e:#}");
    }
}

/// Moves the calling thread into the network namespace behind `handle`.
fn enter_netns(handle: &File) -> io::Result<()> {
    use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};
    Ok(move_into_link_name_space(handle.as_fd(), Some(LinkNameSpaceType::Network))?)
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    run(Command::new("ip").args(args))
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("spawning {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// A datagram socket in the calling thread's network namespace, the handle
/// `SIOCETHTOOL` needs (the ioctl acts on the socket's namespace).
fn ethtool_socket() -> io::Result<OwnedFd> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, socket_with};
    Ok(socket_with(AddressFamily::INET, SocketType::DGRAM, SocketFlags::CLOEXEC, None)?)
}

/// Issues one `struct ethtool_value` command on `ifname` and returns the
/// `data` field the kernel wrote back (meaningful for the G* commands).
/// Hand-written: no crate in the workspace wraps `SIOCETHTOOL`, whose
/// `ifreq` carries a pointer to the command struct.
fn ethtool_value(sock: &OwnedFd, ifname: &str, cmd: u32, data: u32) -> io::Result<u32> {
    let name = ifname.as_bytes();
    if name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("interface name {ifname:?} too long")));
    }
    let mut value = EthtoolValue { cmd, data };
    // SAFETY: ifreq is a plain C struct/union for which all-zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &src) in req.ifr_name.iter_mut().zip(name) {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_data = (&raw mut value).cast();
    // SAFETY: req holds a NUL-terminated name and a pointer to `value`,
    // which outlives the call; SIOCETHTOOL reads/writes only that struct.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &raw mut req) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value.data)
}

/// Formats a CPU set as the kernel's cpumask syntax for sysfs: hex, in
/// comma-separated 32-bit groups, most significant first. Empty set is "0".
fn cpumask_string(cpus: impl IntoIterator<Item = usize>) -> String {
    let mut words: Vec<u32> = Vec::new();
    for c in cpus {
        if words.len() <= c / 32 {
            words.resize(c / 32 + 1, 0);
        }
        words[c / 32] |= 1 << (c % 32);
    }
    if words.is_empty() {
        return "0".to_string();
    }
    let mut groups = words.iter().rev().map(|w| format!("{w:08x}"));
    let first = groups.next().unwrap_or_default();
    let first = first.trim_start_matches('0');
    let mut s = if first.is_empty() { "0" } else { first }.to_string();
    for g in groups {
        s.push(',');
        s.push_str(&g);
    }
    s
}

/// The CPUs the calling thread may run on, ascending.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    let set = rustix::thread::sched_getaffinity(None)?;
    Ok((0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect())
}

/// Pins the calling thread to `cpu`, so the packets it transmits take that
/// CPU's XPS queue and (with non-threaded NAPI) are received on that CPU.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    if cpu >= CpuSet::MAX_CPU {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "cpu out of range"));
    }
    let mut set = CpuSet::new();
    set.set(cpu);
    Ok(rustix::thread::sched_setaffinity(None, &set)?)
}

/// Reads an int socket option. Hand-written for `SO_INCOMING_NAPI_ID`,
/// which neither rustix nor socket2 offers.
fn getsockopt_int(sock: &impl AsFd, opt: libc::c_int) -> io::Result<libc::c_int> {
    let mut val: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: val/len point to a writable c_int and its size; the fd is
    // borrowed from a live socket for the duration of the call.
    let rc =
        unsafe { libc::getsockopt(sock.as_fd().as_raw_fd(), libc::SOL_SOCKET, opt, (&raw mut val).cast(), &mut len) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(val)
}

/// `SO_INCOMING_NAPI_ID` of a socket: the NAPI instance that delivered its
/// most recent packet, 0 if none did (e.g. backlog/`netif_rx` delivery).
pub fn incoming_napi_id(sock: &impl AsFd) -> io::Result<u32> {
    getsockopt_int(sock, SO_INCOMING_NAPI_ID).map(|v| v as u32)
}

/// `SO_INCOMING_CPU` of a socket: the CPU that processed its most recent
/// packet, -1 if none yet.
pub fn incoming_cpu(sock: &impl AsFd) -> io::Result<i32> {
    // The kernel reports "none" as -1; rustix hands the same bits back as u32.
    Ok(rustix::net::sockopt::socket_incoming_cpu(sock)? as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpumask_formats_like_sysfs() {
        assert_eq!(cpumask_string([]), "0");
        assert_eq!(cpumask_string([0]), "1");
        assert_eq!(cpumask_string([1]), "2");
        assert_eq!(cpumask_string([0, 1, 4]), "13");
        assert_eq!(cpumask_string([31]), "80000000");
        assert_eq!(cpumask_string([32]), "1,00000000");
        assert_eq!(cpumask_string([0, 33]), "2,00000001");
    }

    #[test]
    fn allowed_cpus_includes_current() {
        let cpus = allowed_cpus().unwrap();
        let now = rustix::thread::sched_getcpu();
        assert!(cpus.contains(&now), "{now} not in {cpus:?}");
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(VethPair::new("", 2).is_err());
        assert!(VethPair::new("a/b", 2).is_err());
        assert!(VethPair::new("ok", 0).is_err());
    }
}
