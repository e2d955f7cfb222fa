/** The CLI form of the container description (what runContainerSpec passes to `docker create`). */
import assert from "node:assert/strict";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { KEY } from "./mocks.js";
import { containerSpec, createArgs, DEFAULTS, describeExitCode, hopelessState, waitHealthy } from "../src/index.js";

test("createArgs turns the description into docker create flags, and the password stays out of them", () => {
  const spec = containerSpec("cli-box", {
    sshKeys: [KEY],
    password: "never-on-the-command-line",
    sshPort: 2222,
    sshHostIp: "127.0.0.1",
    ports: [{ guestPort: 8080 }, { guestPort: 53, protocol: "udp", hostPort: 5353, hostIp: "::1" }],
    dockerNetwork: "lab",
  });
  const args = createArgs(spec);
  const pairs = (flag: string) => args.flatMap((arg, i) => (arg === flag ? [args[i + 1]] : []));
  assert.deepEqual(args.slice(0, 5), ["create", "--name", "cli-box", "--hostname", "cli-box"]);
  assert.equal(args.at(-1), "devmachines/debian:13");
  assert.deepEqual(pairs("--device"), ["/dev/kvm:/dev/kvm:rwm", "/dev/net/tun:/dev/net/tun:rwm"]);
  assert.deepEqual(pairs("--cap-add"), ["NET_ADMIN"]);
  assert.deepEqual(pairs("--publish"), ["127.0.0.1:2222:22/tcp", "127.0.0.1::8080/tcp", "[::1]:5353:53/udp"]);
  assert.deepEqual(pairs("--mount"), ["type=volume,source=cli-box-disk,target=/var/lib/devmachines"]);
  assert.deepEqual(pairs("--network"), ["lab"]);
  assert.deepEqual(pairs("--network-alias"), ["cli-box"]);
  assert.deepEqual(pairs("--stop-timeout"), ["90"]);
  assert.deepEqual(args.filter((arg) => arg.startsWith("--health") || arg === "--no-healthcheck"), [], "the image's HEALTHCHECK is inherited as it is");
  assert.ok(pairs("--env").includes("PASSWORD_FILE=/run/secrets/devmachines/password"));
  assert.ok(!args.join(" ").includes("never-on-the-command-line"));
});

test("the image's HEALTHCHECK is the one health check: devmachines-health every second, failures ignored for as long as the component waits by default", async () => {
  const dockerfile = await readFile(new URL("../../Dockerfile", import.meta.url), "utf8");
  const healthchecks = dockerfile.split("\n").filter((line) => line.startsWith("HEALTHCHECK"));
  assert.equal(healthchecks.length, 1);
  const startPeriod = /--start-period=(\d+)s/.exec(healthchecks[0]!);
  assert.ok(startPeriod, "the HEALTHCHECK has a start period in seconds");
  assert.ok(Number(startPeriod[1]) >= DEFAULTS.readyTimeoutSeconds, "a slow TCG guest is not marked unhealthy while `wait` still waits");
  assert.match(healthchecks[0]!, /--interval=1s/, "a resumed machine turns healthy within a second of being ready");
  assert.match(dockerfile, /HEALTHCHECK[^\n]*\\\n\s*CMD \["\/usr\/local\/bin\/devmachines-health"\]/);
});

/** A stand-in `docker` binary that answers `inspect` for one container from fixed JSON. */
async function fakeDocker(config: unknown, state: unknown): Promise<{ bin: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "devmachines-fake-docker-"));
  const bin = join(dir, "docker");
  await writeFile(
    bin,
    [
      "#!/bin/sh",
      'case "$*" in',
      `  *"{{json .Config}}"*) echo '${JSON.stringify(config)}' ;;`,
      `  *"{{json .State}}"*) echo '${JSON.stringify(state)} 0' ;;`,
      '  *) echo "unexpected: $*" >&2; exit 1 ;;',
      "esac",
      "",
    ].join("\n"),
  );
  await chmod(bin, 0o755);
  return { bin, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

test("waitHealthy says plainly when the container has no health check (an image without HEALTHCHECK), instead of waiting", async () => {
  for (const healthcheck of [null, { Test: ["NONE"] }]) {
    const fake = await fakeDocker({ Image: "someone/plain-qemu:1", Healthcheck: healthcheck }, { Status: "running", ExitCode: 0 });
    try {
      await assert.rejects(
        waitHealthy("plain", { docker: fake.bin, timeoutMs: 5_000, intervalMs: 10 }),
        /container plain has no health check, so it cannot report when the VM is ready: its image someone\/plain-qemu:1 defines no HEALTHCHECK/,
      );
    } finally {
      await fake.cleanup();
    }
  }
  const fake = await fakeDocker(
    { Image: "devmachines/debian:13", Healthcheck: { Test: ["CMD", "node", "/opt/devmachines/runtime/dist/main.js", "--health"] } },
    { Status: "running", ExitCode: 0, Health: { Status: "healthy" } },
  );
  try {
    assert.deepEqual(await waitHealthy("ready", { docker: fake.bin, intervalMs: 10 }), { seconds: 0 });
  } finally {
    await fake.cleanup();
  }
});

test("waitHealthy gives up at once: stopped, crash-looping (RestartCount grew or restarting), unhealthy; exit codes explained", () => {
  const starting = { Status: "running", ExitCode: 0, Health: { Status: "starting" } };
  assert.equal(hopelessState(starting, 0, 0), undefined);
  assert.equal(hopelessState(starting, 3, 3), undefined, "restarts from before the wait do not count");
  assert.match(hopelessState(starting, 1, 0) ?? "", /crash-looping: its launcher exited \(exit code 0: the guest powered off\) and Docker restarted it 1 time/);
  assert.match(
    hopelessState({ Status: "restarting", Restarting: true, ExitCode: 1 }, 0, 0) ?? "",
    /crash-looping: its launcher exited \(exit code 1: an unexpected failure: QEMU crashed/,
  );
  assert.match(hopelessState({ Status: "exited", ExitCode: 3 }, 0, 0) ?? "", /stopped \(exit code 3: the host or container lacks something/);
  assert.match(
    hopelessState({ Status: "running", ExitCode: 0, Health: { Status: "unhealthy", Log: [{ ExitCode: 1, Output: "the guest is not ready after READY_TIMEOUT=300 s; the stage that never came: kernel\n" }] } }, 0, 0) ?? "",
    /is unhealthy: the guest is not ready after READY_TIMEOUT=300 s; the stage that never came: kernel$/,
  );
  assert.match(
    hopelessState({ Status: "running", ExitCode: 0, Health: { Status: "starting", Log: [{ ExitCode: 1, Output: "the guest is not ready after READY_TIMEOUT=60 s; the stage that never came: SSH: ..." }] } }, 0, 0) ?? "",
    /never became ready: the guest is not ready after READY_TIMEOUT=60 s/,
    "the launcher's verdict counts even in Docker's start period",
  );
  assert.equal(hopelessState({ Status: "running", ExitCode: 0, Health: { Status: "starting", Log: [{ ExitCode: 1, Output: "the VM is booting" }] } }, 0, 0), undefined);
  assert.match(describeExitCode(137), /SIGKILL/);
  assert.match(describeExitCode(4), /GRACE_SECONDS/);
  assert.equal(describeExitCode(77), "not a launcher exit code");
});
