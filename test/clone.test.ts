/**
 * End-to-end, ready-state clones (SNAPSHOT=auto): two new machines of the default size, started
 * at the same time from the machine image's captured state, are each resealed into a machine of
 * their own (host keys, machine-id, host name, users and keys, USER_DATA) and turn healthy
 * without a boot. SNAPSHOT=off and a size that does not match are checked with --dry-run (the
 * plan the launcher would carry out), not with more boots: CI time.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, test } from "node:test";
import { promisify } from "node:util";
import { containerLogs, waitHealthy } from "../sdk/src/run.js";
import { BOOT_TIMEOUT_MS, docker, e2eAvailable, MACHINE_IMAGE, makeKeyPair, publishedPort, removeAll, ssh } from "./support.js";

const exec = promisify(execFile);
const envArgs = (env: Record<string, string>) => Object.entries(env).flatMap(([key, value]) => ["--env", `${key}=${value}`]);
const DEFAULT_SIZE = { CPU: "2", MEMORY: "2G", STORAGE: "20G", ACCEL: "tcg" };

async function dryRunClone(env: Record<string, string>): Promise<{ action: string; reason: string }> {
  const out = await docker(["run", "--rm", ...envArgs({ USER: "dev", PASSWORD: "pw", ...DEFAULT_SIZE, ...env }), MACHINE_IMAGE, "--dry-run"]);
  return (JSON.parse(out) as { clone: { action: string; reason: string } }).clone;
}

test("clone plan (dry run): the default size clones; SNAPSHOT=off and another size cold-boot, each with its reason; a bad SNAPSHOT is refused", async (t) => {
  if (!(await e2eAvailable(t))) return;
  const plain = await dryRunClone({});
  if (plain.action !== "clone") {
    assert.fail(`${MACHINE_IMAGE} should carry a captured state (npm run images captures it): ${plain.reason}`);
  }
  assert.deepEqual(await dryRunClone({ SNAPSHOT: "off" }), { action: "boot", reason: "cold boot: SNAPSHOT=off" });
  assert.match((await dryRunClone({ MEMORY: "1G" })).reason, /^cold boot: CPU=2 MEMORY=1024 MiB; the state was captured at CPU=2 MEMORY=2048 MiB$/);
  assert.match((await dryRunClone({ STORAGE: "30G" })).reason, /^cold boot: STORAGE=30720 MiB/);
  const bad = await docker(["run", "--rm", ...envArgs({ USER: "dev", PASSWORD: "pw", ...DEFAULT_SIZE, SNAPSHOT: "sometimes" }), MACHINE_IMAGE, "--dry-run"]).catch((error: Error) => error);
  assert.ok(bad instanceof Error);
  assert.match(bad.message, /SNAPSHOT="sometimes" must be auto or off/);
});

test("two clones started at once: own host keys, machine-id, host name, users, keys and USER_DATA; healthy without a boot", { timeout: BOOT_TIMEOUT_MS }, async (t) => {
  if (!(await e2eAvailable(t))) return;
  const machines = [
    { name: "dm-clone-e2e-a", user: "alice", hostname: "clone-a", key: await makeKeyPair() },
    { name: "dm-clone-e2e-b", user: "bob", hostname: "clone-b", key: await makeKeyPair() },
  ];
  const names = machines.map((machine) => machine.name);
  after(() => removeAll({ containers: names }));
  await removeAll({ containers: names });

  const started = Date.now();
  await Promise.all(
    machines.map((machine) =>
      docker([
        "run", "-d", "--name", machine.name, "-p", "127.0.0.1::22",
        ...envArgs({
          ...DEFAULT_SIZE, USER: machine.user, HOSTNAME: machine.hostname, SSH_KEYS: machine.key.publicKey,
          USER_DATA: `#cloud-config\nwrite_files:\n  - path: /var/tmp/user-data.txt\n    content: "user data of ${machine.hostname}"\nruncmd:\n  - [sh, -c, "echo ran > /var/tmp/runcmd.txt"]\n`,
        }),
        MACHINE_IMAGE,
      ]),
    ),
  );
  const healthy = await Promise.all(machines.map(async (machine) => (await waitHealthy(machine.name, { timeoutMs: BOOT_TIMEOUT_MS, intervalMs: 250 }), (Date.now() - started) / 1000)));
  for (const [i, machine] of machines.entries()) {
    const logs = (await containerLogs(machine.name)).launcher;
    const reseal = /clone: resealed after \d+ s \(([^)]*)\)/.exec(logs);
    t.diagnostic(`${machine.name}: docker run -> healthy in ${healthy[i]!.toFixed(1)} s (two clones at once, with USER_DATA); reseal steps: ${reseal?.[1] ?? "?"}`);
    assert.match(logs, /snapshot: the captured ready state .* matches: restoring it, then resealing/);
    assert.match(logs, /clone: copied the captured disk/);
    assert.ok(reseal, logs);
    assert.match(logs, /ready after \d+ s \(cloned\)/);
    assert.doesNotMatch(logs, /cloud-init finished after/, "restored, not booted");
  }

  const facts = await Promise.all(
    machines.map(async (machine) => {
      const target = { host: "127.0.0.1", port: await publishedPort(machine.name, 22), user: machine.user, key: machine.key };
      const out = await ssh(target, "hostname; cat /etc/machine-id; cut -d' ' -f2 /etc/ssh/ssh_host_ed25519_key.pub; cat /var/tmp/user-data.txt; echo; cat /var/tmp/runcmd.txt; id -u devmachines-capture 2>/dev/null || echo no-capture-user");
      return { machine, target, lines: out.split("\n") };
    }),
  );
  const [a, b] = facts as [(typeof facts)[0], (typeof facts)[0]];
  for (const { machine, lines } of facts) {
    assert.equal(lines[0], machine.hostname, "its own host name");
    assert.match(lines[1]!, /^[0-9a-f]{32}$/);
    assert.equal(lines[3], `user data of ${machine.hostname}`, "its own USER_DATA (write_files)");
    assert.equal(lines[4], "ran", "its own USER_DATA (runcmd)");
    assert.equal(lines[5], "no-capture-user", "the capture's user is gone");
  }
  assert.notEqual(a.lines[1], b.lines[1], "different machine-ids");
  assert.notEqual(a.lines[2], b.lines[2], "different SSH host keys");
  // Each accepts only its own user and key.
  await assert.rejects(ssh({ ...a.target, user: b.machine.user, key: b.machine.key }, "true"), "the other clone's user cannot log in");
  await assert.rejects(ssh({ ...a.target, key: b.machine.key }, "true"), "another key is refused");
  await assert.rejects(ssh({ ...b.target, user: "devmachines-capture", key: b.machine.key }, "true"), "the capture's user cannot log in");
  // The host key sshd presents is the clone's new one, not the capture's.
  for (const { target, lines } of facts) {
    const { stdout } = await exec("ssh-keyscan", ["-t", "ed25519", "-p", String(target.port), "127.0.0.1"]);
    assert.equal(stdout.trim().split(/\s+/)[2], lines[2], "sshd serves the regenerated host key");
  }
});
