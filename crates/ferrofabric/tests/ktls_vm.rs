//! Kernel TLS in a real kernel: the host here has no `tls` ULP, so a Debian 6.12 guest
//! (`run-vm --kernel 6.12` from `shared/tools/linux-nvme-vm`) runs our target and our initiator over
//! loopback with a TLS PSK, and both ends must hand their record keys to kTLS and then carry
//! verified I/O. The guest image has no `tls.ko` and only the guest script goes in, so this test
//! embeds in a copy of `tests/guest/ktls.sh` (base64 of a gzipped tar): the `ferrofabric` binary
//! cargo built (stripped), the shared libraries it needs that the image lacks, and `tls.ko`, `gcm.ko`,
//! `ghash-generic.ko` with their dependencies (from the `depends=` of each module's modinfo), taken
//! from the kernel .deb in run-vm's cache. The guest's own `/proc/net/tls_stat` counters prove which
//! ends installed kTLS. Needs root and the VM tool; skips loudly elsewhere. Emulated: the I/O
//! figures it prints are not performance.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_ferrofabric");
const KERNEL: &str = "6.12";
/// What kTLS with TLS_AES_{128,256}_GCM needs beyond the `tls` ULP: the kernel asks the crypto API
/// for `gcm(aes)`, whose template (`gcm`) and hash (`ghash`) are modules on Debian's kernel; its
/// `request_module` finds nothing in the guest, so they are loaded up front.
const ROOT_MODULES: &[&str] = &["tls", "gcm", "ghash-generic"];
/// glibc's libraries: the guest image always has them (its nvme-cli and fio use the host's glibc).
const GLIBC: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "ld-linux-x86-64.so.2",
    "linux-vdso.so.1",
];

/// Runs `cmd`, panicking with its stderr when it fails; returns its stdout.
fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.stderr(Stdio::piped()).output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Module names compare with `-` and `_` alike.
fn norm(name: &str) -> String {
    name.replace('-', "_")
}

/// The cached 6.12 image (built now if missing): its directory and kernel release.
fn image(vm: &Path) -> (PathBuf, String) {
    let out = Command::new(vm).args(["--kernel", KERNEL, "--build-only"]).output().expect("run-vm runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "run-vm --kernel {KERNEL} --build-only failed:\n{err}");
    // "run-vm: image: DIR (KVER)"
    let line = err.lines().rev().find_map(|l| l.strip_prefix("run-vm: image: ")).expect("run-vm names its image");
    let (dir, kver) = line.rsplit_once(" (").expect("image line: DIR (KVER)");
    (PathBuf::from(dir), kver.trim_end_matches(')').to_string())
}

/// The kernel package run-vm unpacked for `kver`: `debs-*/linux-image-KVER_*.deb` beside the image.
fn kernel_deb(image: &Path, kver: &str) -> PathBuf {
    let flavour = image.parent().unwrap();
    let prefix = format!("linux-image-{kver}_");
    for d in std::fs::read_dir(flavour).unwrap().flatten() {
        if !d.file_name().to_string_lossy().starts_with("debs-") {
            continue;
        }
        for f in std::fs::read_dir(d.path()).unwrap().flatten() {
            let n = f.file_name().to_string_lossy().to_string();
            if n.starts_with(&prefix) && n.ends_with(".deb") {
                return f.path();
            }
        }
    }
    panic!("no {prefix}*.deb under {} (run-vm's cache layout changed?)", flavour.display());
}

/// A module file's bytes, decompressed.
fn module_bytes(p: &Path) -> Vec<u8> {
    let n = p.to_string_lossy();
    let tool = if n.ends_with(".xz") {
        "xz"
    } else if n.ends_with(".zst") {
        "zstd"
    } else if n.ends_with(".gz") {
        "gzip"
    } else {
        return std::fs::read(p).unwrap();
    };
    run(Command::new(tool).arg("-dc").arg(p))
}

/// The `depends=` of a module's modinfo (loadable modules it needs; built-in ones are not listed).
fn depends(ko: &[u8]) -> Vec<String> {
    let key = b"\0depends=";
    let Some(i) = ko.windows(key.len()).position(|w| w == key) else { return Vec::new() };
    let rest = &ko[i + key.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end]).split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// Extracts the modules of `ROOT_MODULES` and their dependencies from the kernel .deb into
/// `out/modules`, dependencies first, and writes their order to `out/modules.list`.
fn modules(deb: &Path, kver: &str, work: &Path, out: &Path) -> Vec<String> {
    let mut dpkg = Command::new("dpkg-deb").arg("--fsys-tarfile").arg(deb).stdout(Stdio::piped()).spawn().unwrap();
    std::fs::create_dir_all(work).unwrap();
    let base = format!("./lib/modules/{kver}");
    let tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(work)
        .arg("--wildcards")
        .args(["net/tls", "crypto", "lib", "arch/x86/crypto"].map(|d| format!("{base}/kernel/{d}/*")))
        .arg(format!("{base}/modules.builtin"))
        .stdin(dpkg.stdout.take().unwrap())
        .status()
        .unwrap();
    assert!(dpkg.wait().unwrap().success() && tar.success(), "extracting modules from {}", deb.display());
    let mdir = work.join(format!("lib/modules/{kver}"));
    let builtin: BTreeSet<String> = std::fs::read_to_string(mdir.join("modules.builtin"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.rsplit('/').next())
        .map(|f| norm(f.trim_end_matches(".ko")))
        .collect();
    let mut files: HashMap<String, PathBuf> = HashMap::new();
    let mut stack = vec![mdir.join("kernel")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let file = p.file_name().unwrap().to_string_lossy().to_string();
                if let Some((stem, _)) = file.split_once(".ko") {
                    files.insert(norm(stem), p);
                }
            }
        }
    }
    fn visit(
        name: &str,
        files: &HashMap<String, PathBuf>,
        builtin: &BTreeSet<String>,
        done: &mut Vec<(String, Vec<u8>)>,
        seen: &mut BTreeSet<String>,
    ) {
        let n = norm(name);
        if !seen.insert(n.clone()) {
            return;
        }
        let Some(p) = files.get(&n) else {
            assert!(builtin.contains(&n), "module {name} is neither a file in the kernel package nor built in");
            eprintln!("ktls_vm: module {name} is built into the kernel");
            return;
        };
        let ko = module_bytes(p);
        for d in depends(&ko) {
            visit(&d, files, builtin, done, seen);
        }
        done.push((n, ko));
    }
    let (mut done, mut seen) = (Vec::new(), BTreeSet::new());
    for m in ROOT_MODULES {
        visit(m, &files, &builtin, &mut done, &mut seen);
    }
    std::fs::create_dir_all(out.join("modules")).unwrap();
    let mut list = String::new();
    for (i, (n, ko)) in done.iter().enumerate() {
        let f = format!("{i:02}-{n}.ko");
        std::fs::write(out.join("modules").join(&f), ko).unwrap();
        list.push_str(&f);
        list.push('\n');
    }
    std::fs::write(out.join("modules.list"), list).unwrap();
    done.into_iter().map(|(n, _)| n).collect()
}

/// Copies the shared libraries `bin` needs that the guest image lacks into `out/lib`.
fn libraries(bin: &Path, image: &Path, out: &Path) -> Vec<String> {
    let ldd = String::from_utf8(run(Command::new("ldd").arg(bin))).unwrap();
    let cpio = std::fs::File::open(image.join("initramfs.cpio")).unwrap();
    let listing = run(Command::new(image.join("busybox")).args(["cpio", "-t"]).stdin(cpio));
    let in_guest: BTreeSet<String> =
        String::from_utf8_lossy(&listing).lines().filter_map(|l| l.rsplit('/').next()).map(str::to_string).collect();
    std::fs::create_dir_all(out.join("lib")).unwrap();
    let mut copied = Vec::new();
    for l in ldd.lines() {
        let mut w = l.split_whitespace();
        let (Some(soname), Some("=>"), Some(path)) = (w.next(), w.next(), w.next()) else { continue };
        assert!(path.starts_with('/'), "ldd: {soname} not found on the host:\n{ldd}");
        if GLIBC.contains(&soname) || in_guest.contains(soname) {
            continue;
        }
        std::fs::copy(path, out.join("lib").join(soname)).unwrap();
        copied.push(soname.to_string());
    }
    copied
}

/// `tests/guest/ktls.sh` with the payload appended, written to `dir/ktls.sh`.
fn guest_script(dir: &Path, payload: &Path) -> PathBuf {
    let tgz = dir.join("payload.tgz");
    run(Command::new("tar").arg("-C").arg(payload).args(["--owner=0", "--group=0", "-czf"]).arg(&tgz).arg("."));
    let b64 = run(Command::new("base64").arg("-w").arg("76").arg(&tgz));
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/guest/ktls.sh");
    let script = dir.join("ktls.sh");
    let mut f = std::fs::File::create(&script).unwrap();
    f.write_all(&std::fs::read(src).unwrap()).unwrap();
    // ktls.sh always ends by exiting, so the shell never reads on into the payload; the extra exit
    // is a guard should it ever fall through.
    f.write_all(b"exit 3\n__FF_PAYLOAD__\n").unwrap();
    f.write_all(&b64).unwrap();
    script
}

#[test]
fn ktls_carries_target_and_initiator_io_in_a_linux_guest() {
    let name = "ktls_carries_target_and_initiator_io_in_a_linux_guest";
    if let Some(why) = ff_testkit::vm_skip_reason(env!("CARGO_MANIFEST_DIR")) {
        eprintln!("SKIP: {name}: {why} -- kTLS NOT TESTED");
        return;
    }
    let t0 = Instant::now();
    let vm = ff_testkit::run_vm(env!("CARGO_MANIFEST_DIR")).unwrap();
    let dir = std::env::temp_dir().join(format!("ff-ktls-vm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let payload = dir.join("payload");
    std::fs::create_dir_all(&payload).unwrap();

    let (image, kver) = image(&vm);
    let deb = kernel_deb(&image, &kver);
    let mods = modules(&deb, &kver, &dir.join("deb"), &payload);
    let bin = payload.join("ferrofabric");
    run(Command::new("strip").arg("-o").arg(&bin).arg(BIN));
    let libs = libraries(&bin, &image, &payload);
    let script = guest_script(&dir, &payload);
    eprintln!(
        "{name}: kernel {kver}; modules {mods:?}; libraries embedded {libs:?}; guest script {} KiB; prepared in {:.1}s",
        std::fs::metadata(&script).unwrap().len() / 1024,
        t0.elapsed().as_secs_f64()
    );

    let out = Command::new(&vm)
        .args(["--kernel", KERNEL, "--timeout", "240", "--mem", "1024"])
        .arg(&script)
        .output()
        .expect("run-vm runs");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stdout.lines().filter(|l| {
        ["PASS", "FAIL", "TGTLOG", "TLSSTAT", "PERFOUT", "PERFLOG", "ktls:", "insmod", "perf "]
            .iter()
            .any(|p| l.starts_with(p))
            || l.contains(" passed, ")
    }) {
        eprintln!("{name}: {line}");
    }
    eprintln!("{name}: whole run {:.1}s", t0.elapsed().as_secs_f64());
    let last = stdout.lines().rev().find(|l| l.contains(" passed, ")).unwrap_or("");
    assert!(
        out.status.success() && last.ends_with(" 0 failed") && !last.starts_with("0 passed"),
        "{name}: kTLS in the guest failed (exit {:?}, last line {last:?})\n--- guest ---\n{stdout}\n--- run-vm ---\n{stderr}",
        out.status.code()
    );
    // The script's verdicts, checked again here so that a script that stops early cannot pass.
    for must in [
        "PASS: tls ULP available",
        "PASS: target: ktls=true on all",
        "PASS: kernel: TlsTxSw +",
        "PASS: kernel: TlsRxSw +",
        "PASS: perf over TLS completed",
        "PASS: perf reported no I/O or verify error",
        "PASS: kernel: --no-ktls run added exactly",
    ] {
        assert!(stdout.lines().any(|l| l.starts_with(must)), "{name}: no {must:?} in the guest output:\n{stdout}");
    }
    assert!(
        stdout.lines().any(|l| l.starts_with("TGTLOG: ") && l.contains("TLS established") && l.contains("ktls=true")),
        "{name}: the target never logged a kTLS connection:\n{stdout}"
    );
}
