import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { execa } from "execa";
import { ExitCode, LauncherError } from "../src/exitCodes.js";
import { bridgePrerequisiteProblems, checkBridgePrerequisites, parseCapEff, setupBridge } from "../src/network/bridge.js";
import { discoverNetwork, type CommandRunner } from "../src/network/discover.js";
import { planNetwork, type BridgePlan } from "../src/network/plan.js";
import { skipUnlessRoot } from "./fixtures/root.js";

describe("bridge prerequisites", () => {
  it("reads CapEff and finds CAP_NET_ADMIN (bit 12)", () => {
    assert.equal(parseCapEff("Name:\tnode\nCapInh:\t0000000000000000\nCapEff:\t000001fffeffffff\n"), "000001fffeffffff");
    assert.deepEqual(bridgePrerequisiteProblems({ capEff: "000001fffeffffff", tun: "ok" }), []);
    // Docker's default set: chown dac_override fowner fsetid kill setgid setuid setpcap net_bind_service net_raw sys_chroot mknod audit_write setfcap.
    assert.deepEqual(bridgePrerequisiteProblems({ capEff: "00000000a80425fb", tun: "ok" }), ["the process lacks CAP_NET_ADMIN (add --cap-add NET_ADMIN to docker run)"]);
    assert.deepEqual(bridgePrerequisiteProblems({ capEff: "00000000a80435fb", tun: "ok" }), []);
  });

  it("names --device /dev/net/tun when the device is missing or refused", () => {
    assert.match(bridgePrerequisiteProblems({ capEff: "00000000a80435fb", tun: "missing" })[0]!, /does not exist \(add --device \/dev\/net\/tun/);
    assert.match(bridgePrerequisiteProblems({ capEff: "00000000a80435fb", tun: "denied" })[0]!, /cannot be opened \(add --device \/dev\/net\/tun/);
    assert.equal(bridgePrerequisiteProblems({ tun: "missing" }).length, 2);
  });

  it("throws LauncherError(Host) naming both docker run flags", async () => {
    await assert.rejects(
      checkBridgePrerequisites({ status: "/nonexistent/status", tun: "/nonexistent/tun" }),
      (error: unknown) =>
        error instanceof LauncherError &&
        error.exitCode === ExitCode.Host &&
        error.message.includes("--cap-add NET_ADMIN") &&
        error.message.includes("--device /dev/net/tun"),
    );
  });

  it("passes here, as root with /dev/net/tun", { skip: skipUnlessRoot("/dev/net/tun and CAP_NET_ADMIN") }, async () => {
    await checkBridgePrerequisites();
  });
});


describe("setupBridge in a network namespace", { skip: skipUnlessRoot("ip netns") }, () => {
  // The "container" namespace holds eth0 (the inner veth end); its peer is the "host" side with the gateway.
  const ns = `devm-br-${process.pid}`;
  const outer = `devm-brh-${process.pid}`;
  const run: CommandRunner = async (command, args) => {
    const { stdout } = await execa("ip", ["netns", "exec", ns, command, ...args]);
    return { stdout };
  };
  const ip = (...args: string[]) => execa("ip", ["-n", ns, ...args]);
  const json = async (...args: string[]) => JSON.parse((await execa("ip", ["-n", ns, "-j", ...args])).stdout) as Record<string, any>[];
  /** Everything setupBridge may touch, compared whole before and after. */
  const snapshot = async () => ({ addr: await json("addr", "show"), route: await json("route", "show"), link: await json("-d", "link", "show") });

  let plan: BridgePlan;

  before(async () => {
    await execa("ip", ["netns", "add", ns]);
    await execa("ip", ["netns", "add", outer]);
    // As Docker does for containers on networks without IPv6.
    await execa("ip", ["netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]);
    await ip("link", "set", "lo", "up");
    await ip("link", "add", "eth0", "address", "02:42:0a:3d:00:05", "mtu", "1450", "type", "veth", "peer", "name", "veth-host", "netns", outer);
    await execa("ip", ["-n", outer, "link", "set", "veth-host", "mtu", "1450", "up"]);
    await execa("ip", ["-n", outer, "addr", "add", "10.61.0.1/24", "dev", "veth-host"]);
    await ip("addr", "add", "10.61.0.5/24", "brd", "+", "dev", "eth0");
    await ip("link", "set", "eth0", "up");
    await ip("route", "add", "default", "via", "10.61.0.1");
    await ip("route", "add", "10.89.0.0/16", "via", "10.61.0.254", "metric", "20");
    const facts = await discoverNetwork(run);
    plan = planNetwork({ network: "BRIDGE", ports: [] }, facts).bridge!;
  });

  after(async () => {
    await execa("ip", ["netns", "del", ns]).catch(() => undefined);
    await execa("ip", ["netns", "del", outer]).catch(() => undefined);
  });

  let baseline: Awaited<ReturnType<typeof snapshot>>;
  beforeEach(async () => {
    baseline = await snapshot();
  });

  it("plans from what it discovered", () => {
    assert.equal(plan.containerInterface, "eth0");
    assert.equal(plan.originalMac, "02:42:0a:3d:00:05");
    assert.equal(plan.mtu, 1450);
    assert.equal(plan.broadcast, "10.61.0.255");
    assert.deepEqual(plan.routes.map((r) => `${r.destination} ${r.gateway}`), ["10.89.0.0/16 10.61.0.254", "default 10.61.0.1"]);
  });

  it("builds the bridge, moves the address off eth0, swaps its MAC, and undoes it all", async () => {
    const handle = await setupBridge(plan, run);

    const links = await json("-d", "link", "show");
    const byName = (name: string) => links.find((l) => l.ifname === name)!;
    assert.equal(byName("br0").linkinfo.info_kind, "bridge");
    assert.equal(byName("br0").address, plan.bridgeMac);
    assert.equal(byName("br0").mtu, 1450);
    assert.ok(byName("br0").flags.includes("UP"));
    assert.equal(byName("tap0").linkinfo.info_kind, "tun");
    assert.equal(byName("tap0").master, "br0");
    assert.equal(byName("tap0").mtu, 1450);
    assert.equal(byName("eth0").master, "br0");
    assert.equal(byName("eth0").address, plan.containerMac);
    assert.notEqual(plan.containerMac, plan.originalMac);
    const eth0 = (await json("addr", "show", "dev", "eth0"))[0]!;
    assert.deepEqual(eth0.addr_info.filter((a: { family: string }) => a.family === "inet"), []);
    assert.deepEqual(await json("route", "show"), []);

    await handle.undo();
    await handle.undo(); // twice is harmless
    assert.deepEqual(await snapshot(), baseline);
  });

  it("leaves the namespace exactly as before when any command fails mid-way", async () => {
    // Count the commands of a good run, then fail each one in turn.
    let total = 0;
    const counting: CommandRunner = (command, args) => {
      total++;
      return run(command, args);
    };
    await (await setupBridge(plan, counting)).undo();
    assert.deepEqual(await snapshot(), baseline);
    const setupCommands = total; // includes the undo commands, so it over-counts: fine
    for (let failAt = 1; failAt <= setupCommands; failAt++) {
      let calls = 0;
      let failed = false;
      const faulty: CommandRunner = (command, args) => {
        calls++;
        if (calls === failAt && !failed) {
          failed = true;
          return Promise.reject(Object.assign(new Error("injected"), { stderr: `injected failure of ${command} ${args.join(" ")}` }));
        }
        return run(command, args);
      };
      try {
        const handle = await setupBridge(plan, faulty);
        await handle.undo(); // the failure fell into undo itself or past setup
      } catch (error) {
        assert.ok(error instanceof LauncherError, String(error));
        assert.match(error.message, /BRIDGE (setup failed at|teardown incomplete)/);
      }
      // A failed undo command leaves a trace by design; only setup failures must roll back cleanly.
      if (calls >= failAt && failAt <= setupCount(plan)) {
        assert.deepEqual(await snapshot(), baseline, `after a failure at command ${failAt}`);
      }
      await cleanUp();
    }
  });

  it("refuses a TAP name that already exists and changes nothing", async () => {
    await ip("tuntap", "add", "dev", "tap0", "mode", "tap");
    const before = await snapshot();
    await assert.rejects(setupBridge(plan, run), (error: unknown) => {
      assert.ok(error instanceof LauncherError);
      assert.equal(error.exitCode, ExitCode.Host);
      assert.match(error.message, /named tap0 already exists/);
      return true;
    });
    assert.deepEqual(await snapshot(), before);
    await ip("link", "del", "tap0");
  });

  /** Puts the namespace back to the baseline if a case above broke it, so cases stay independent. */
  async function cleanUp() {
    const now = await snapshot();
    if (JSON.stringify(now) === JSON.stringify(baseline)) return;
    for (const name of ["br0", "tap0"]) await ip("link", "del", name).catch(() => undefined);
    await ip("link", "set", "eth0", "address", plan.originalMac).catch(() => undefined);
    await ip("addr", "replace", "10.61.0.5/24", "brd", "+", "dev", "eth0").catch(() => undefined);
    await ip("route", "replace", "default", "via", "10.61.0.1").catch(() => undefined);
    await ip("route", "replace", "10.89.0.0/16", "via", "10.61.0.254", "metric", "20").catch(() => undefined);
  }
});

/** How many commands a clean setup runs (live MAC change; no fallback). */
function setupCount(plan: BridgePlan): number {
  return 2 /* name checks */ + 1 /* bridge */ + 1 /* tap */ + 3 /* tap mtu, master, up */ + plan.routes.length + 1 /* addr */ + 1 /* mac */ + 1 /* master */ + 1 /* up */;
}
