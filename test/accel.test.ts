/**
 * End-to-end: ACCEL=auto on a host whose KVM breaks, played by a stand-in for
 * qemu-system-x86_64 mounted over it in the machine image: under `-accel kvm` it runs the
 * real QEMU under TCG (so the guest boots and prints as it would) and then fails as a
 * paravirtual KVM does; under TCG it is the real QEMU. /dev/null stands in for /dev/kvm, so
 * the test behaves the same on hosts with and without KVM. Each case ends with a healthy
 * machine under TCG; the second start on the same volume starts QEMU under TCG at once, because
 * of the verdict the first one left in the disks folder.
 */
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { containerLogs, waitHealthy } from "../sdk/src/run.js";
import { BOOT_TIMEOUT_MS, docker, e2eAvailable, MACHINE_IMAGE, makeKeyPair, progress, removeAll, waitForLog, type KeyPair } from "./support.js";

const REAL_QEMU = "/usr/bin/qemu-system-x86_64";

/**
 * The stand-in. late-error: QEMU's kvm_pvm text on stderr `delay` s after start (the VM keeps
 * running, as real QEMU's does after "KVM internal error"); silent: nothing at all, ever.
 */
function standIn(mode: "late-error" | "silent", delay = 20): string {
  return `#!/bin/bash
for arg in "$@"; do [ "$arg" = kvm ] && kvm=1; done
[ -n "$kvm" ] || exec ${REAL_QEMU} "$@"
echo "kvm start" >> /faults/kvm-starts
${mode === "silent" ? "exec sleep 3600" : ""}
args=(); for arg in "$@"; do
  case "$arg" in kvm) arg=tcg,thread=multi ;; host) arg=max ;; esac
  args+=("$arg")
done
( sleep ${delay}; echo "KVM internal error. Suberror: 1" >&2; echo "emulation failure" >&2 ) &
exec ${REAL_QEMU} "\${args[@]}"
`;
}

let key: KeyPair;
let faults: string;
before(async () => {
  key = await makeKeyPair();
  faults = mkdtempSync(join(tmpdir(), "dm-accel-faults-"));
  chmodSync(faults, 0o755);
});
after(() => rmSync(faults, { recursive: true, force: true }));

/** Starts the machine with the stand-in as QEMU; returns when the container runs. */
async function start(name: string, volume: string, mode: "late-error" | "silent"): Promise<void> {
  const script = join(faults, `qemu-${mode}`);
  writeFileSync(script, standIn(mode), { mode: 0o755 });
  await docker([
    "run", "-d", "--name", name,
    "-v", "/dev/null:/dev/kvm",
    "-v", `${script}:/usr/local/bin/qemu-system-x86_64:ro`,
    "-v", `${faults}:/faults`,
    "-v", `${volume}:/var/lib/devmachines`,
    "-e", "CPU=2", "-e", "MEMORY=1G", "-e", "STORAGE=6G", "-e", "USER=dev", "-e", `SSH_KEYS=${key.publicKey}`, "-e", "ACCEL=auto",
    MACHINE_IMAGE,
  ]);
}

const kvmStarts = () => (existsSync(join(faults, "kvm-starts")) ? readFileSync(join(faults, "kvm-starts"), "utf8").trim().split("\n").length : 0);

describe("ACCEL=auto on a host whose KVM breaks", { concurrency: 1 }, () => {
  test("KVM's error arrives late: restarted under TCG, healthy; the next start on the volume goes straight to TCG", { timeout: 2 * BOOT_TIMEOUT_MS + 120_000 }, async (t) => {
    if (!(await e2eAvailable(t))) return;
    const name = "dm-test-accel-late";
    const volume = "dm-test-accel-late-disk";
    after(() => removeAll({ containers: [name], volumes: [volume] }));
    await removeAll({ containers: [name], volumes: [volume] });
    rmSync(join(faults, "kvm-starts"), { force: true });

    await start(name, volume, "late-error");
    const first = await waitHealthy(name, { timeoutMs: BOOT_TIMEOUT_MS, onProgress: progress("accel-late") });
    const { launcher } = await containerLogs(name);
    assert.match(launcher, /accelerator: KVM \(\/dev\/kvm opens: trying KVM, TCG if it fails\)/);
    assert.match(launcher, /warning: KVM cannot run this guest \(QEMU reported "KVM internal error. Suberror: 1", \d+\.\ds after start\)/, launcher);
    assert.match(launcher, /remembered in \/var\/lib\/devmachines\/kvm-verdict.json/);
    assert.match(launcher, /started QEMU \(pid \d+\) under TCG\n/);
    assert.match(launcher, /ready after \d+ s under TCG/);
    assert.equal(kvmStarts(), 1);
    console.log(`  [accel-late] healthy after ${first.seconds} s (KVM failed late, then TCG)`);

    await docker(["rm", "--force", name]);
    await start(name, volume, "late-error");
    // The first start proved the TCG guest comes up; this one need only show that QEMU was
    // started under TCG straight away (no KVM attempt can follow a TCG start).
    const secondStarted = Date.now();
    await waitForLog(name, /started QEMU \(pid \d+\) under TCG\n/, 120_000);
    const again = (await containerLogs(name)).launcher;
    assert.match(again, /accelerator: TCG \(KVM failed this guest on this host before .* delete that file or start once with ACCEL=kvm/, again);
    assert.doesNotMatch(again, /under KVM/);
    assert.equal(kvmStarts(), 1, "KVM was not tried again");
    console.log(`  [accel-late] second start on the same volume: QEMU under TCG straight away, ${Math.round((Date.now() - secondStarted) / 1000)} s after docker run`);
  });

  test("under KVM the guest shows nothing: restarted under TCG within the progress bound, healthy", { timeout: BOOT_TIMEOUT_MS + 120_000 }, async (t) => {
    if (!(await e2eAvailable(t))) return;
    const name = "dm-test-accel-silent";
    const volume = "dm-test-accel-silent-disk";
    after(() => removeAll({ containers: [name], volumes: [volume] }));
    await removeAll({ containers: [name], volumes: [volume] });

    await start(name, volume, "silent");
    const { seconds } = await waitHealthy(name, { timeoutMs: BOOT_TIMEOUT_MS, onProgress: progress("accel-silent") });
    const { launcher } = await containerLogs(name);
    assert.match(launcher, /warning: KVM cannot run this guest \(no output at all on the serial console [\d.]+s after start/, launcher);
    assert.match(launcher, /ready after \d+ s under TCG/);
    console.log(`  [accel-silent] healthy after ${seconds} s`);
  });
});
