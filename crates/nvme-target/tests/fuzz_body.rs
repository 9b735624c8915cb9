//! The cargo-fuzz `command_path` body on stable: a few thousand inputs built from valid commands
//! (admin, fabrics, I/O with and without data) with random mutations, so most get past validation.

use ff_nvme::nvme::{SglDescriptor, Sqe, fctype, opcode};
use ff_nvme_tcp::{CapsuleCmd, Framing, H2CData, Pdu};
use ff_target::fuzzing::command_path;

use ff_testkit::XorShift;

fn pdu(p: Pdu, data: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 256 + data.len()];
    let n = p.encode_with_data(&Framing::default(), data, &mut b).unwrap();
    b.truncate(n);
    b
}

fn cmd(opc: u8, cid: u16, nsid: u32, dptr: SglDescriptor, cdw: [u32; 3]) -> Sqe {
    Sqe { opcode: opc, flags: 0x40, cid, nsid, dptr, cdw10: cdw[0], cdw11: cdw[1], cdw12: cdw[2], ..Sqe::default() }
}

fn seeds() -> Vec<Vec<u8>> {
    let t = SglDescriptor::transport;
    let ic = SglDescriptor::in_capsule;
    vec![
        // Enable, identify controller and namespace, get log page, features, keep alive, AER.
        pdu(
            Pdu::CapsuleCmd(CapsuleCmd {
                sqe: Sqe {
                    opcode: opcode::FABRICS,
                    cid: 1,
                    nsid: u32::from(fctype::PROPERTY_SET),
                    cdw11: 0x14,
                    cdw12: 0x0046_0001,
                    ..Sqe::default()
                },
            }),
            &[],
        ),
        pdu(Pdu::CapsuleCmd(CapsuleCmd { sqe: cmd(opcode::ADMIN_IDENTIFY, 2, 0, t(4096), [1, 0, 0]) }), &[]),
        pdu(Pdu::CapsuleCmd(CapsuleCmd { sqe: cmd(opcode::ADMIN_IDENTIFY, 3, 1, t(4096), [0, 0, 0]) }), &[]),
        pdu(
            Pdu::CapsuleCmd(CapsuleCmd { sqe: cmd(opcode::ADMIN_GET_LOG_PAGE, 4, 0, t(512), [0x007F_0002, 0, 0]) }),
            &[],
        ),
        pdu(
            Pdu::CapsuleCmd(CapsuleCmd { sqe: cmd(opcode::ADMIN_SET_FEATURES, 5, 0, t(0), [0x07, 0x0003_0003, 0]) }),
            &[],
        ),
        pdu(Pdu::CapsuleCmd(CapsuleCmd { sqe: cmd(opcode::ADMIN_ASYNC_EVENT, 6, 0, t(0), [0, 0, 0]) }), &[]),
        pdu(
            Pdu::CapsuleCmd(CapsuleCmd { sqe: cmd(opcode::ADMIN_SET_FEATURES, 7, 0, ic(0, 16), [0x81, 0, 0]) }),
            &[9; 16],
        ),
        // I/O-looking commands on whatever queue (the admin queue refuses them: also a path).
        pdu(Pdu::CapsuleCmd(CapsuleCmd { sqe: cmd(opcode::IO_WRITE, 8, 1, ic(0, 4096), [0, 0, 7]) }), &[5; 4096]),
        pdu(Pdu::CapsuleCmd(CapsuleCmd { sqe: cmd(opcode::IO_READ, 9, 1, t(4096), [0, 0, 7]) }), &[]),
        pdu(Pdu::CapsuleCmd(CapsuleCmd { sqe: cmd(opcode::ADMIN_SET_FEATURES, 10, 0, t(16), [0x81, 0, 0]) }), &[]),
        pdu(Pdu::H2CData(H2CData { cccid: 10, ttag: 10, datao: 0, datal: 16, last: true }), &[3; 16]),
    ]
}

#[test]
fn command_path_survives_mutated_command_streams() {
    let seeds = seeds();
    // The seeds themselves reach the controller: enable, identify, logs, features succeed.
    let mut all = vec![1u8];
    for s in &seeds {
        all.extend(s);
    }
    let st = command_path(&all);
    assert!(st.commands >= 10 && st.successes >= 6, "seeds exercise the admin path: {st:?}");
    let mut io = vec![2u8];
    for s in &seeds[7..9] {
        io.extend(s);
    }
    let st = command_path(&io);
    assert!(st.device_ios >= 2 && st.successes >= 2, "write then read reach the device: {st:?}");
    // Fed all that is buffered at once (a reactor decoding in place from its pipe), the same streams
    // take the same path.
    for (step, mut stream) in [(1u8, all.clone()), (2, io.clone())] {
        let one = command_path(&stream);
        stream[0] = step + 3;
        let batched = command_path(&stream);
        assert_eq!(
            (batched.commands, batched.successes, batched.device_ios),
            (one.commands, one.successes, one.device_ios),
            "mode {step}: batched {batched:?} vs step by step {one:?}"
        );
    }
    // The same I/O stream on a queue connected without SQ flow control (reads end with one C2HData
    // flagged SUCCESS) completes alike.
    let mut no_flow = io.clone();
    no_flow[0] = 2 + 6;
    let (a, b) = (command_path(&io), command_path(&no_flow));
    assert_eq!((a.commands, a.successes, a.device_ios), (b.commands, b.successes, b.device_ios));
    let mut total = ff_target::fuzzing::Stats::default();
    let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
    for i in 0..3000 {
        let mut input = vec![(i % 12) as u8];
        for _ in 0..1 + rng.below(6) {
            input.extend(&seeds[rng.below(seeds.len())]);
        }
        if i % 3 != 0 {
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(input.len());
                input[at] = rng.next_u64() as u8;
            }
        }
        if i % 7 == 0 {
            input.truncate(rng.below(input.len()));
        }
        let st = command_path(&input);
        total.commands += st.commands;
        total.successes += st.successes;
        total.device_ios += st.device_ios;
    }
    assert!(total.commands > 3000 && total.successes > 1000, "mutations still reach commands: {total:?}");
    assert!(total.device_ios > 300, "and the devices: {total:?}");
    // Pure noise too.
    for _ in 0..500 {
        let n = rng.below(600);
        let input: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
        command_path(&input);
    }
}
