/**
 * Lab machines find each other by name, in both network modes (issue 13).
 *
 * One user-defined Docker network holds a DevMachineGroup's two machines, described by the
 * SDK's own container descriptions (`groupContainerSpecs`, as the component deploys them):
 * `web` in BRIDGE mode and `db` in NAT mode, plus a plain container `dm-dns-peer` with a
 * stand-in SSH banner on port 22. From each guest, with no DNS setting: the other machine (by
 * its name in the group, a single label, and by container name) and the plain container
 * resolve to their Docker addresses and their port 22 answers; a name from the guest's
 * /etc/hosts resolves as a single label too; an outside name resolves whenever the Docker host
 * itself resolves it (no internet here: deb.debian.org, the mirror, is what the host resolves).
 *
 * Boots two guests at once: run under `flock /tmp/devmachines-boot.lock`.
 */
import assert from "node:assert/strict";
import { lookup } from "node:dns/promises";
import { rm } from "node:fs/promises";
import { test } from "node:test";
import { containerLogs, docker, groupContainerSpecs, removeContainerSpec, runContainerSpec, waitHealthy } from "../sdk/src/index.js";
import { BOOT_TIMEOUT_MS, e2eAvailable, freePort, MACHINE_IMAGE, makeKeyPair, progress, removeAll, ssh, type SshTarget } from "./support.js";

const GROUP = "dm-dns-lab";
const PEER = "dm-dns-peer";
const OUTSIDE = "deb.debian.org";
/** Two TCG guests boot at once here, on a shared 2-core machine: give them longer than one guest's BOOT_TIMEOUT_MS. */
const BOOT_MS = BOOT_TIMEOUT_MS + 4 * 60_000;

function log(message: string): void {
  console.log(`[dns ${new Date().toISOString().slice(11, 19)}] ${message}`);
}

/** The address Docker gave a container on the group's network (a BRIDGE guest holds its container's). */
async function addressOf(name: string): Promise<string> {
  return docker(["inspect", "--format", `{{(index .NetworkSettings.Networks "${GROUP}").IPAddress}}`, name]);
}

/** Shell for the guest: each name's first IPv4 address, then the first line port 22 sends back. */
function lookupScript(names: string[]): string {
  return names
    .map((name) => `printf '%s %s %s\\n' ${name} "$(getent ahostsv4 ${name} | head -n 1 | cut -d' ' -f1)" ` +
      `"$(timeout 15 bash -c 'exec 3<>/dev/tcp/${name}/22 && head -n 1 <&3' 2>/dev/null | tr -d '\\r' | cut -c1-8)"`)
    .join("; ");
}

test("a group's BRIDGE and NAT machines and a plain container find each other by name; outside names resolve", { timeout: BOOT_MS + 300_000 }, async (t) => {
  if (!(await e2eAvailable(t))) return;
  const key = await makeKeyPair();
  const placed = groupContainerSpecs(GROUP, {
    template: {
      image: MACHINE_IMAGE, cpu: 2, memory: "1G", storage: "6G", accel: "tcg", sshKeys: [key.publicKey],
      sshHostIp: "127.0.0.1", readyTimeoutSeconds: BOOT_MS / 1000, graceSeconds: 20, restart: "no",
    },
    machines: [
      { name: "web", network: "BRIDGE" },
      { name: "db", network: "NAT", sshPort: await freePort() },
    ],
  });
  const [web, db] = placed.map((p) => p.spec);
  assert.deepEqual(placed.map((p) => p.spec.networks), [
    [{ name: GROUP, aliases: [`${GROUP}-web`, "web"] }],
    [{ name: GROUP, aliases: [`${GROUP}-db`, "db"] }],
  ], "each machine's name in the group is a network alias");
  const cleanup = async () => {
    for (const spec of [web!, db!]) await removeContainerSpec(spec, { volumes: "all" });
    await removeAll({ containers: [PEER], networks: [GROUP] });
  };
  try {
    await cleanup();
    await docker(["network", "create", "--label", "dev.devmachines.test=dns", GROUP]);
    // A plain container with an SSH-like banner on port 22 (node is in the machine image).
    await docker([
      "run", "-d", "--name", PEER, "--network", GROUP, "--entrypoint", "node", MACHINE_IMAGE, "-e",
      'require("net").createServer((s) => s.end("SSH-2.0-dm-dns-peer\\r\\n")).listen(22)',
    ]);
    for (const spec of [web!, db!]) await runContainerSpec(spec);
    const seconds = await Promise.all([web!, db!].map((spec) => waitHealthy(spec.name, { timeoutMs: BOOT_MS, onProgress: progress(spec.name) })));
    log(`healthy after ${seconds.map((s) => s.seconds).join(" s and ")} s`);

    const addresses = Object.fromEntries(await Promise.all([web!.name, db!.name, PEER].map(async (name) => [name, await addressOf(name)] as const)));
    const address = (name: string) => addresses[name.startsWith(GROUP) || name === PEER ? name : `${GROUP}-${name}`]!;
    const targets: Record<string, SshTarget> = {
      web: { host: addresses[web!.name]!, port: 22, user: "dev", key },
      db: { host: db!.access.sshHost!, port: db!.access.sshPort!, user: "dev", key },
    };
    let hostResolves: string | undefined;
    try {
      hostResolves = (await lookup(OUTSIDE, { family: 4 })).address;
    } catch (error) {
      log(`the Docker host cannot resolve ${OUTSIDE} (${(error as Error).message}): the outside-name assertion is skipped`);
    }

    for (const [self, other] of [["web", "db"], ["db", "web"]] as const) {
      const names = [other, `${GROUP}-${other}`, PEER];
      try {
        const out = await ssh(targets[self]!, lookupScript(names), 120_000);
        log(`${self} (${self === "web" ? "BRIDGE" : "NAT"}):\n${out}`);
        const lines = out.split("\n").map((line) => line.split(" "));
        for (const [index, name] of names.entries()) {
          const [shown, resolved, banner] = lines[index] ?? [];
          assert.equal(shown, name);
          assert.equal(resolved, address(name), `${self} resolves ${name} to its Docker address`);
          assert.equal(banner, "SSH-2.0-", `${self} reaches ${name}'s port 22 by name`);
        }
        // A single-label name from the guest's own /etc/hosts, through systemd-resolved as well as glibc.
        const hosts = await ssh(targets[self]!, "echo '10.1.2.3 hostsonly' | sudo tee -a /etc/hosts >/dev/null; getent ahostsv4 hostsonly | head -n 1; resolvectl query hostsonly");
        assert.match(hosts, /^10\.1\.2\.3 /, `${self}: /etc/hosts names resolve`);
        assert.match(hosts, /hostsonly: 10\.1\.2\.3/, `${self}: systemd-resolved answers /etc/hosts single-label names`);
        if (hostResolves) {
          const outside = await ssh(targets[self]!, `getent ahostsv4 ${OUTSIDE} | head -n 1 | cut -d' ' -f1`);
          log(`${self}: ${OUTSIDE} -> ${outside} (the Docker host: ${hostResolves})`);
          assert.match(outside, /^\d+\.\d+\.\d+\.\d+$/, `${self} resolves ${OUTSIDE}, as the Docker host does`);
        }
      } catch (error) {
        const status = await ssh(targets[self]!, "resolvectl status --no-pager; cat /etc/resolv.conf").catch((e: Error) => e.message);
        log(`${self}'s resolver:\n${status}`);
        throw error;
      }
    }
  } catch (error) {
    for (const spec of [web!, db!]) {
      log(`logs of ${spec.name}:\n${await containerLogs(spec.name, { tail: 30 }).then((logs) => logs.launcher, (e: Error) => e.message)}`);
    }
    throw error;
  } finally {
    await cleanup();
    await rm(key.dir, { recursive: true, force: true });
  }
});
