/**
 * End-to-end: the machine image on a real Docker Engine, a real guest booted
 * by real QEMU (TCG here), real cloud-init, and SSH from outside the container.
 * One VM at a time in this file: the machine has two cores.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { containerLogs, waitHealthy } from "../sdk/src/run.js";
import {
  BOOT_TIMEOUT_MS, docker, e2eAvailable, freePort, MACHINE_IMAGE, makeKeyPair, progress, publishedPort, removeAll, ssh, waitForLog, type KeyPair,
} from "./support.js";

const exec = promisify(execFile);
const DEVICES = ["--device", "/dev/kvm", "--device", "/dev/net/tun", "--cap-add", "NET_ADMIN"];
const envArgs = (env: Record<string, string>) => Object.entries(env).flatMap(([key, value]) => ["--env", `${key}=${value}`]);
/** kvm_pvm: /dev/kvm is there but ordinary guests die on it (DESIGN.md). */
const BROKEN_KVM = existsSync("/sys/module/kvm_pvm");

let key: KeyPair;
before(async () => {
  key = await makeKeyPair();
});

describe("a DevMachine on Docker", { concurrency: 1 }, () => {
  test("NAT: SSH with key and password, host name, sudo, USER_DATA, a PORTS forward, health only when ready, ACCEL=auto; a full disks folder pauses the guest until there is room", { timeout: BOOT_TIMEOUT_MS + 240_000 }, async (t) => {
    if (!(await e2eAvailable(t))) return;
    const name = "dm-test-nat";
    after(() => removeAll({ containers: [name] }));
    await removeAll({ containers: [name] });
    const userData = [
      "#cloud-config",
      "write_files:",
      "  - path: /srv/www/index.html",
      "    content: hello from the guest",
      "runcmd:",
      "  - [touch, /var/tmp/runcmd-ran]",
      "  - [sh, -c, 'setsid python3 -m http.server 8000 --directory /srv/www >/dev/null 2>&1 < /dev/null &']",
    ].join("\n");
    await docker([
      "run", "-d", "--name", name, "--hostname", "nat-box", ...DEVICES,
      // A small disks folder of its own, so the test can fill it (see the end).
      "--tmpfs", "/var/lib/devmachines:size=1536m",
      "-p", "127.0.0.1::22", "-p", "127.0.0.1::8000",
      ...envArgs({ CPU: "2", MEMORY: "1G", STORAGE: "6G", USER: "dev", SSH_KEYS: key.publicKey, PASSWORD: "correct horse", PORTS: "8000:8000", USER_DATA: userData }),
      MACHINE_IMAGE,
    ]);
    const sshPort = await publishedPort(name, 22);
    const target = { host: "127.0.0.1", port: sshPort, user: "dev", key };

    // While the container is not healthy, cloud-init must not be done yet: poll both.
    let sawStarting = false;
    const report = progress("nat");
    await waitHealthy(name, {
      timeoutMs: BOOT_TIMEOUT_MS,
      intervalMs: 2000,
      onProgress: (state) => {
        report(state);
        if (state.health === "starting") sawStarting = true;
      },
    });
    assert.ok(sawStarting, "the health status was 'starting' before it was 'healthy'");
    assert.equal(await ssh(target, "cloud-init status | head -1"), "status: done", "healthy means cloud-init has finished");

    assert.equal(await ssh(target, "hostname"), "nat-box");
    assert.equal(await ssh(target, "whoami"), "dev");
    assert.equal(await ssh(target, "sudo -n whoami"), "root");
    assert.equal(await ssh({ ...target, key: undefined, password: "correct horse" }, "whoami"), "dev", "password login works");
    assert.equal(await ssh(target, "cat /srv/www/index.html"), "hello from the guest", "USER_DATA write_files took effect");
    assert.equal(await ssh(target, "test -f /var/tmp/runcmd-ran && echo yes"), "yes", "USER_DATA runcmd took effect");

    const webPort = await publishedPort(name, 8000);
    let body = "";
    for (let attempt = 0; attempt < 20 && body === ""; attempt++) {
      body = await fetch(`http://127.0.0.1:${webPort}/`).then((response) => response.text(), () => "");
      if (body === "") await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    assert.equal(body, "hello from the guest", "the PORTS forward reaches a service in the guest");

    const logs = await containerLogs(name);
    const allLogs = `${logs.launcher}${logs.console}`;
    if (BROKEN_KVM) {
      assert.match(allLogs, /KVM cannot run this guest.*restarting the VM under TCG/s, "ACCEL=auto noticed the broken KVM and fell back");
      assert.match(allLogs, /started QEMU \(pid \d+\) under TCG/);
    } else {
      assert.match(allLogs, /started QEMU \(pid \d+\) under (KVM|TCG)/);
    }
    assert.match(allLogs, /DEVMACHINES_READY/, "the serial console reaches docker logs");

    // The disks folder fills up while the guest writes: QEMU pauses the guest (no write lost),
    // the launcher says so, and resumes it once there is room again.
    const free = Number(await docker(["exec", name, "sh", "-c", "df -B1 --output=avail /var/lib/devmachines | tail -1"]));
    await docker(["exec", name, "fallocate", "-l", String(free - 64 * 2 ** 20), "/var/lib/devmachines/filler"]);
    await ssh(target, "nohup sh -c 'head -c 200M /dev/urandom > /var/tmp/big && sync && sha256sum /var/tmp/big > /var/tmp/big.sum' >/dev/null 2>&1 &");
    await waitForLog(name, /\/var\/lib\/devmachines is full: QEMU paused the guest so that no write is lost/, 120_000);
    await docker(["exec", name, "rm", "/var/lib/devmachines/filler"]);
    await waitForLog(name, /\/var\/lib\/devmachines has room again \(\d+ MiB free\): the guest resumes/, 30_000);
    const sum = await ssh(target, "while [ ! -s /var/tmp/big.sum ]; do sleep 1; done; sha256sum -c /var/tmp/big.sum", 120_000);
    assert.equal(sum, "/var/tmp/big: OK", "the write that filled the folder completed intact after the resume");
  });

  test("persistence: clean stop with exit 0, same volume keeps files and host keys; a bigger STORAGE grows the file system", { timeout: 2 * BOOT_TIMEOUT_MS + 180_000 }, async (t) => {
    if (!(await e2eAvailable(t))) return;
    const [first, second, volume] = ["dm-test-persist-1", "dm-test-persist-2", "dm-test-persist"];
    after(() => removeAll({ containers: [first, second], volumes: [volume] }));
    await removeAll({ containers: [first, second], volumes: [volume] });
    const start = async (name: string, storage: string) => {
      await docker([
        "run", "-d", "--name", name, "--hostname", "keeper", ...DEVICES, "--stop-timeout", "90",
        "-p", "127.0.0.1::22", "-v", `${volume}:/var/lib/devmachines`,
        ...envArgs({ CPU: "2", MEMORY: "2G", STORAGE: storage, USER: "dev", SSH_KEYS: key.publicKey, ACCEL: "tcg" }),
        MACHINE_IMAGE,
      ]);
      await waitHealthy(name, { timeoutMs: BOOT_TIMEOUT_MS, onProgress: progress(name) });
      return { host: "127.0.0.1", port: await publishedPort(name, 22), user: "dev", key };
    };
    const rootBytes = (target: Awaited<ReturnType<typeof start>>) => ssh(target, "df --output=size -B1 / | tail -1").then(Number);

    // The default size under TCG: the first start is a ready-state clone, the second boots its disk.
    const one = await start(first, "20G");
    await ssh(one, "echo kept > ~/note.txt && sync");
    const hostKey = await ssh(one, "cat /etc/ssh/ssh_host_ed25519_key.pub");
    const sizeBefore = await rootBytes(one);

    // Exit code 0 (not 4, killed after the grace period) is the proof of a clean power-off.
    await docker(["stop", "-t", "90", first]);
    assert.equal(await docker(["inspect", "--format", "{{.State.ExitCode}}", first]), "0", "the guest powered off cleanly");
    const stopLogs = (await containerLogs(first)).launcher;
    assert.match(stopLogs, /SIGTERM received: asking the guest to power off/);
    assert.match(stopLogs, /QEMU exited cleanly \(the guest powered off\)/);
    await docker(["rm", first]);

    const two = await start(second, "22G");
    assert.equal(await ssh(two, "cat ~/note.txt"), "kept");
    assert.equal(await ssh(two, "cat /etc/ssh/ssh_host_ed25519_key.pub"), hostKey, "SSH host keys survive");
    const sizeAfter = await rootBytes(two);
    assert.ok(sizeAfter > sizeBefore + 1.5 * 1024 ** 3, `the root file system grew (${sizeBefore} -> ${sizeAfter} bytes)`);
  });

  test("bad configuration: exit code 2, docker logs name the variable, the volume is untouched", async (t) => {
    if (!(await e2eAvailable(t))) return;
    const [name, volume] = ["dm-test-bad", "dm-test-bad"];
    after(() => removeAll({ containers: [name], volumes: [volume] }));
    await removeAll({ containers: [name], volumes: [volume] });
    await docker(["volume", "create", volume]);
    await docker([
      "run", "--name", name, ...DEVICES, "-v", `${volume}:/var/lib/devmachines`,
      ...envArgs({ CPU: "lots", MEMORY: "1G", STORAGE: "6G", USER: "dev", SSH_KEYS: key.publicKey }),
      MACHINE_IMAGE,
    ]).catch(() => undefined);
    assert.equal(await docker(["inspect", "--format", "{{.State.ExitCode}}", name]), "2");
    assert.match((await containerLogs(name)).launcher, /CPU="lots" must be a whole number of virtual CPUs/);
    const listing = await docker(["run", "--rm", "--entrypoint", "ls", "-v", `${volume}:/data`, MACHINE_IMAGE, "-A", "/data"]);
    assert.equal(listing, "", "nothing was written to the volume");
  });

  test("BRIDGE: another container on the network reaches the VM's SSH at the DevMachine container's own address", { timeout: BOOT_TIMEOUT_MS + 120_000 }, async (t) => {
    if (!(await e2eAvailable(t))) return;
    const [name, network] = ["dm-test-bridge", "dm-test-bridge-net"];
    after(() => removeAll({ containers: [name], networks: [network] }));
    await removeAll({ containers: [name], networks: [network] });
    await docker(["network", "create", "--subnet", "10.213.7.0/24", network]);
    await docker([
      "run", "-d", "--name", name, "--hostname", "bridged", ...DEVICES, "--network", network,
      ...envArgs({ CPU: "2", MEMORY: "1G", STORAGE: "6G", USER: "dev", SSH_KEYS: key.publicKey, NETWORK: "BRIDGE" }),
      MACHINE_IMAGE,
    ]);
    const address = await docker(["inspect", "--format", `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, name]);
    assert.match(address, /^10\.213\.7\.\d+$/);
    await waitHealthy(name, { timeoutMs: BOOT_TIMEOUT_MS, onProgress: progress("bridge") });

    // A peer container speaks to the VM at the DevMachine container's address: the SSH banner comes from the guest.
    const banner = await docker([
      "run", "--rm", "--network", network, "--entrypoint", "bash", MACHINE_IMAGE,
      "-c", `exec 3<>/dev/tcp/${address}/22 && timeout 20 head -n 1 <&3`,
    ]);
    assert.match(banner, /^SSH-2\.0-OpenSSH/);
    // And a full login over the same network, from the Docker host.
    const target = { host: address, port: 22, user: "dev", key };
    assert.equal(await ssh(target, "hostname"), "bridged");
    assert.match(await ssh(target, "ip -4 -o addr show scope global"), new RegExp(`inet ${address.replace(/\./g, "\\.")}/24`), "the guest holds the container's address");
  });

  test("docker compose with the example compose file", { timeout: BOOT_TIMEOUT_MS + 120_000 }, async (t) => {
    if (!(await e2eAvailable(t))) return;
    const compose = fileURLToPath(new URL("../examples/compose.yaml", import.meta.url));
    const project = "dm-test-compose";
    const sshPort = await freePort();
    const env = { ...process.env, SSH_KEYS: key.publicKey, SSH_PORT: String(sshPort) };
    const run = (args: string[]) => exec("docker-compose", ["-p", project, "-f", compose, ...args], { env });
    after(() => run(["down", "--volumes", "--timeout", "90"]).catch(() => undefined));
    await run(["up", "-d"]);
    const { stdout } = await run(["ps", "-q"]);
    const id = stdout.trim();
    assert.ok(id, "compose started the service");
    await waitHealthy(id, { timeoutMs: BOOT_TIMEOUT_MS, onProgress: progress("compose") });
    assert.equal(await publishedPort(id, 22), sshPort, "SSH_PORT chose the published port");
    assert.equal(await ssh({ host: "127.0.0.1", port: sshPort, user: "dev", key }, "whoami"), "dev");
  });
});

