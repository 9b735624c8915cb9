//! The initiator against our own target on loopback: setup, identify, discovery, every I/O command with
//! data verified, digests on and off, and two queues on two reactor threads at queue depth 32.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ff_initiator::{Buf, Controller, HostOptions, IoCompletion, IoGroup, QueueId, discover};
use ff_nvme_tcp::Digests;
use ff_sock::{Backend, GroupOptions};
use ff_target::{RunningTarget, TargetOptions, config::DEFAULT_NQN};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn target(backend: Backend) -> (RunningTarget, SocketAddr) {
    let mut o = TargetOptions::default().with_default_subsystem(DEFAULT_NQN, "ram".parse().unwrap());
    o.sock.backend = backend;
    o.listen = vec!["127.0.0.1:0".parse().unwrap()];
    o.discovery_listen = vec![];
    let t = ff_target::start(&o).unwrap();
    let a = t.io_addrs[0];
    (t, a)
}

fn opts(digests: Digests, io_queues: u16) -> HostOptions {
    HostOptions {
        digests,
        io_queues,
        queue_depth: 64,
        connect_timeout: Duration::from_secs(3),
        command_timeout: Duration::from_secs(3),
        ..HostOptions::default()
    }
}

/// Polls until `n` completions arrived (bounded).
fn wait(g: &mut IoGroup, n: usize) -> Vec<IoCompletion> {
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut out = Vec::new();
    while out.len() < n {
        assert!(Instant::now() < deadline, "only {} of {n} completions", out.len());
        g.poll(Some(Duration::from_millis(20)), &mut out).unwrap();
    }
    out
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    (0..len).map(|i| ((i as u64).wrapping_mul(2654435761).wrapping_add(seed * 97) >> 7) as u8).collect()
}

// Each scenario runs with both ends on each sock backend.
#[test]
fn connect_identify_discover_and_every_io_command_epoll() {
    connect_identify_discover_and_every_io_command(Backend::Epoll);
}
#[test]
fn connect_identify_discover_and_every_io_command_poll() {
    connect_identify_discover_and_every_io_command(Backend::Poll);
}
#[test]
fn connect_identify_discover_and_every_io_command_uring() {
    connect_identify_discover_and_every_io_command(Backend::Uring);
}

fn connect_identify_discover_and_every_io_command(backend: Backend) {
    let (_t, addr) = target(backend);
    let entries = discover(addr, &opts(Digests::default(), 0)).unwrap();
    assert!(entries.iter().any(|e| e.subnqn == DEFAULT_NQN && e.socket_addr() == Some(addr)), "{entries:?}");
    for d in [Digests::default(), Digests { header: true, data: true }] {
        let mut ctrl = Controller::connect(addr, DEFAULT_NQN, &opts(d, 1)).unwrap();
        let id = ctrl.identify_controller().unwrap();
        assert_eq!(id.subnqn, DEFAULT_NQN);
        assert_eq!(id.cntlid, ctrl.cntlid());
        assert!(id.in_capsule_bytes() >= 4096);
        assert_eq!(ctrl.active_namespaces().unwrap(), vec![1]);
        let ns = ctrl.identify_namespace(1).unwrap();
        assert!(ns.nsze > 0 && ns.block_size >= 512, "{ns:?}");
        let bs = ns.block_size as usize;
        assert_eq!(ctrl.get_log_page(0x02, 512).unwrap().len(), 512);

        let mut g = IoGroup::new(GroupOptions { backend, ..GroupOptions::default() }).unwrap();
        let q = g.add(ctrl.take_io_queues().pop().unwrap()).unwrap();
        let mut slba = 0u64;
        let mut placed = Vec::new();
        for (i, len) in [4096usize, 8192, 12288, 65536, 131072].into_iter().enumerate() {
            let data = pattern(len, i as u64 + u64::from(d.data));
            let nlb = (len / bs) as u32;
            g.queue(q)
                .unwrap()
                .submit_write(1, slba, nlb, Buf::from_slice(&data), i == 2, i as u64)
                .map_err(|e| e.0)
                .unwrap();
            placed.push((slba, nlb, data));
            slba += u64::from(nlb);
        }
        for c in wait(&mut g, placed.len()) {
            assert_eq!(c.result, Ok(()), "write {}", c.tag);
            assert!(c.buf.is_some(), "write buffers come back");
        }
        for (i, (slba, nlb, _)) in placed.iter().enumerate() {
            let b = Buf::new(*nlb as usize * bs);
            g.queue(q).unwrap().submit_read(1, *slba, *nlb, b, i as u64).map_err(|e| e.0).unwrap();
        }
        for c in wait(&mut g, placed.len()) {
            assert_eq!(c.result, Ok(()));
            assert!(c.buf.as_deref() == Some(&placed[c.tag as usize].2[..]), "read {} differs", c.tag);
        }
        // Flush, Write Zeroes and deallocate, then read zeroes back.
        let qq = g.queue(q).unwrap();
        qq.submit_flush(1, 100).map_err(|e| e.0).unwrap();
        qq.submit_write_zeroes(1, placed[0].0, placed[0].1, 101).map_err(|e| e.0).unwrap();
        qq.submit_dsm_deallocate(1, &[(placed[1].0, placed[1].1)], 102).map_err(|e| e.0).unwrap();
        for c in wait(&mut g, 3) {
            assert_eq!(c.result, Ok(()), "tag {}", c.tag);
        }
        g.queue(q).unwrap().submit_read(1, placed[0].0, placed[0].1, Buf::new(4096), 7).map_err(|e| e.0).unwrap();
        let c = wait(&mut g, 1).pop().unwrap();
        assert!(c.buf.unwrap().iter().all(|&b| b == 0), "write zeroes");
        drop(g);
        ctrl.shutdown().unwrap();
    }
}

#[test]
fn two_queues_on_two_reactor_threads_at_depth_32_epoll() {
    two_queues_on_two_reactor_threads_at_depth_32(Backend::Epoll);
}
#[test]
fn two_queues_on_two_reactor_threads_at_depth_32_uring() {
    two_queues_on_two_reactor_threads_at_depth_32(Backend::Uring);
}

fn two_queues_on_two_reactor_threads_at_depth_32(backend: Backend) {
    let (_t, addr) = target(backend);
    let mut ctrl = Controller::connect(addr, DEFAULT_NQN, &opts(Digests { header: true, data: false }, 2)).unwrap();
    let queues = ctrl.take_io_queues();
    assert_eq!(queues.len(), 2);
    let threads: Vec<_> = queues
        .into_iter()
        .enumerate()
        .map(|(t, queue)| {
            std::thread::spawn(move || {
                let mut g = IoGroup::new(GroupOptions { backend, ..GroupOptions::default() }).unwrap();
                let q: QueueId = g.add(queue).unwrap();
                let base = t as u64 * 100_000;
                let (total, len) = (256u64, 16384usize);
                let nlb = (len / 512) as u32;
                let run = |g: &mut IoGroup, write: bool| {
                    let (mut next, mut done) = (0u64, 0u64);
                    let mut out = Vec::new();
                    let deadline = Instant::now() + Duration::from_secs(8);
                    while done < total {
                        assert!(Instant::now() < deadline);
                        while next < total && next - done < 32 {
                            let slba = base + next * u64::from(nlb);
                            let qq = g.queue(q).unwrap();
                            if write {
                                let b = Buf::from_slice(&pattern(len, slba));
                                qq.submit_write(1, slba, nlb, b, false, next).map_err(|e| e.0).unwrap();
                            } else {
                                qq.submit_read(1, slba, nlb, Buf::new(len), next).map_err(|e| e.0).unwrap();
                            }
                            next += 1;
                        }
                        out.clear();
                        g.poll(Some(Duration::from_millis(10)), &mut out).unwrap();
                        for c in &out {
                            assert_eq!(c.result, Ok(()));
                            if !write {
                                let slba = base + c.tag * u64::from(nlb);
                                assert!(c.buf.as_deref() == Some(&pattern(len, slba)[..]), "data at {slba}");
                            }
                        }
                        done += out.len() as u64;
                    }
                };
                run(&mut g, true);
                run(&mut g, false);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    ctrl.shutdown().unwrap();
}

#[test]
fn io_queues_carry_their_reactors_so_mark() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIP: io_queues_carry_their_reactors_so_mark: SO_MARK needs CAP_NET_ADMIN");
        return;
    }
    let (_t, addr) = target(Backend::Epoll);
    let mut o = opts(Digests::default(), 3);
    o.queue_marks = vec![0x100, 0x101];
    let mut ctrl = Controller::connect(addr, DEFAULT_NQN, &o).unwrap();
    let mut g = IoGroup::new(GroupOptions::default()).unwrap();
    let mut marks = Vec::new();
    for q in ctrl.take_io_queues() {
        let qid = q.qid();
        let id = g.add(q).unwrap();
        let sock = g.sock_group().sock(g.sock_id(id).unwrap()).unwrap();
        marks.push((qid, sock.get_int(libc::SOL_SOCKET, libc::SO_MARK).unwrap() as u32));
    }
    assert_eq!(marks, [(1, 0x100), (2, 0x101), (3, 0x100)], "queue qid uses marks[(qid-1) % 2]");
}

#[test]
fn namespace_added_while_connected_arrives_as_an_async_event() {
    let (t, addr) = target(Backend::Epoll);
    let ctrl = Controller::connect(addr, DEFAULT_NQN, &opts(Digests::default(), 1)).unwrap();
    assert!(ctrl.take_async_events().is_empty());
    let params =
        serde_json::json!({ "nqn": DEFAULT_NQN, "namespace": { "nsid": 2, "backend": "ram", "size": 1 << 20 } });
    use ff_rpc::Handler;
    assert_eq!(t.manager().call("nvmf_subsystem_add_ns", Some(params)).unwrap(), 2);
    let deadline = Instant::now() + Duration::from_secs(8);
    let events = loop {
        let e = ctrl.take_async_events();
        if !e.is_empty() {
            break e;
        }
        assert!(Instant::now() < deadline, "no asynchronous event within 8 s");
        std::thread::sleep(Duration::from_millis(20));
    };
    // Notice (type 2), namespace attribute changed (0x00), details in the changed namespace list (0x04).
    assert_eq!(events[0], ff_initiator::AsyncEvent { kind: 2, info: 0x00, log_page: 0x04 });
    assert_eq!(ctrl.active_namespaces().unwrap(), vec![1, 2]);
    ctrl.shutdown().unwrap();
}
