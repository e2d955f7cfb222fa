import assert from "node:assert/strict";
import { test } from "node:test";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { parse } from "yaml";
import { KEY, recorded, resourcesOf, value, type Recorded } from "./mocks.js";
import { DevMachine, DevMachineGroup, envList, groupContainerSpecs, groupMachineSettings, hostNames, placeMachines, sshHostOf } from "../src/index.js";

const CONTAINER = "docker:index/container:Container";
const NETWORK = "docker:index/network:Network";
const env = (inputs: Record<string, any>) => Object.fromEntries((inputs.envs as string[]).map((line) => line.split(/=(.*)/s).slice(0, 2)));

test("placement: round robin over the hosts, pinned machines stay where they are pinned, overrides replace template fields", () => {
  const placed = placeMachines(
    "lab",
    {
      template: { memory: "1G", sshKeys: [KEY], labels: [{ label: "tier", value: "any" }] },
      machines: [{ name: "a" }, { name: "b", memory: "3G" }, { name: "c" }, { name: "d", host: "east" }, { name: "e", host: "0" }],
    },
    ["west", "east"],
  );
  assert.deepEqual(
    placed.map((m) => [m.fullName, m.hostName]),
    [["lab-a", "west"], ["lab-b", "east"], ["lab-c", "west"], ["lab-d", "east"], ["lab-e", "west"]],
  );
  assert.equal(placed[0]!.settings.memory, "1G");
  assert.equal(placed[1]!.settings.memory, "3G");
  assert.deepEqual(placed[1]!.settings.sshKeys, [KEY]);
  assert.throws(() => placeMachines("lab", { machines: [{ name: "x", host: "north" }] }, ["west"]), /pins host "north", which is not one of west/);
  assert.throws(() => placeMachines("lab", { machines: [{ name: "x" }, { name: "x" }] }, ["west"]), /used twice/);
  assert.deepEqual(placeMachines("g", { count: 3 }, ["h"]).map((m) => m.fullName), ["g-0", "g-1", "g-2"]);
});

test("placement: two machines on one host cannot publish the same host port; on two hosts they can", () => {
  const twoOnOnePort = { machines: [{ name: "a", sshPort: 2301 }, { name: "b", sshPort: 2301 }] };
  assert.throws(() => placeMachines("lab", twoOnOnePort, ["west"]), /machine "b" sshPort: host port 2301\/tcp is taken by machine "a" on host "west"/);
  assert.equal(placeMachines("lab", twoOnOnePort, ["west", "east"]).length, 2);
  const web = { machines: [{ name: "a", ports: [{ guestPort: 80, hostPort: 8080 }] }, { name: "b", sshPort: 8080 }] };
  assert.throws(() => placeMachines("lab", web, ["west"]), /machine "b" sshPort: host port 8080\/tcp is taken by machine "a"/);
  const udp = { machines: [{ name: "a", ports: [{ guestPort: 53, hostPort: 5353, protocol: "udp" as const }] }, { name: "b", sshPort: 5353 }] };
  assert.equal(placeMachines("lab", udp, ["west"]).length, 2);
  assert.deepEqual(hostNames([{ host: "unix:///a" }, { name: "b", host: "ssh://b" }]), ["host0", "b"]);
  assert.equal(sshHostOf({ host: "ssh://ops@build-2.example.com" }), "build-2.example.com");
  assert.equal(sshHostOf({ host: "tcp://10.0.0.5:2376" }), "10.0.0.5");
  assert.equal(sshHostOf({ host: "unix:///var/run/docker.sock" }), "127.0.0.1");
  assert.equal(sshHostOf({ host: "ssh://x", sshHost: "x.public" }), "x.public");
});

test("a group over two existing Docker providers: machines spread, one private network per host, per-machine overrides", async () => {
  const west = new docker.Provider("west", { host: "unix:///run/west.sock" });
  const east = new docker.Provider("east", { host: "unix:///run/east.sock" });
  const lab = new DevMachineGroup(
    "lab",
    {
      template: { cpu: 1, memory: "1G", sshKeys: [KEY] },
      machines: [{ name: "web" }, { name: "db", memory: "3G", sshPort: 2201 }, { name: "cache", host: "host1" }],
    },
    { dockerProviders: [west, east] },
  );
  const machines = await value(lab.machines);
  assert.deepEqual(Object.keys(machines), ["web", "db", "cache"]);
  assert.deepEqual(
    Object.values(machines).map((m) => [m.containerName, m.host]),
    [["lab-web", "host0"], ["lab-db", "host1"], ["lab-cache", "host1"]],
  );
  assert.equal(machines.db!.sshPort, 2201);
  assert.equal(machines.db!.sshCommand, "ssh -p 2201 dev@127.0.0.1");

  const westUrn = await value(west.urn);
  const eastUrn = await value(east.urn);
  const containers: Record<string, Recorded> = Object.fromEntries(resourcesOf(CONTAINER, "lab-").map((c) => [c.inputs.name, c]));
  assert.ok(containers["lab-web"]!.provider?.startsWith(westUrn), "web runs on the west engine");
  assert.ok(containers["lab-db"]!.provider?.startsWith(eastUrn), "db runs on the east engine");
  assert.ok(containers["lab-cache"]!.provider?.startsWith(eastUrn), "cache is pinned to host1 (east)");
  assert.equal(env(containers["lab-web"]!.inputs).MEMORY, "1G");
  assert.equal(env(containers["lab-db"]!.inputs).MEMORY, "3G", "the override wins");
  assert.equal(env(containers["lab-db"]!.inputs).CPU, "1", "the template fills the rest");

  const networks = resourcesOf(NETWORK, "lab-net-");
  assert.deepEqual(networks.map((n) => n.name).sort(), ["lab-net-host0", "lab-net-host1"]);
  assert.ok(networks.every((n) => n.inputs.name === "lab"));
  assert.ok(networks.find((n) => n.name === "lab-net-host0")!.provider?.startsWith(westUrn));
  for (const [name, container] of Object.entries(containers)) {
    assert.equal(container.inputs.networksAdvanced[0].name, "lab");
    // Machines find each other by their names in the group (`ssh db` from web): a network alias each.
    assert.deepEqual(container.inputs.networksAdvanced[0].aliases, [name, name.replace(/^lab-/, "")]);
    const labels = Object.fromEntries(container.inputs.labels.map((l: any) => [l.label, l.value]));
    assert.equal(labels["dev.devmachines.group"], "lab");
  }

  const sshConfig = await value(lab.sshConfig);
  assert.match(sshConfig, /^Host lab-db\n  HostName 127\.0\.0\.1\n  Port 2201\n  User dev\n  StrictHostKeyChecking accept-new$/m);
  const inventory = parse(await value(lab.ansibleInventory));
  assert.deepEqual(inventory.all.children.lab.hosts["lab-db"], { ansible_host: "127.0.0.1", ansible_port: 2201, ansible_user: "dev" });
  assert.deepEqual(Object.keys(inventory.all.children.lab.children.lab_host1.hosts), ["lab-db", "lab-cache"]);
  assert.deepEqual(Object.keys(inventory.all.children.lab.children.lab_host0.hosts), ["lab-web"]);
});

test("a group over `hosts` creates one Docker provider per host and reaches each machine at its host's address", async () => {
  const farm = new DevMachineGroup("farm", {
    count: 2,
    template: { sshKeys: [KEY] },
    hosts: [
      { name: "a", host: "ssh://ops@build-a", sshOpts: ["-o", "StrictHostKeyChecking=no"] },
      { name: "b", host: "ssh://ops@build-b" },
    ],
    privateNetwork: false,
  });
  const machines = await value(farm.machines);
  assert.equal(machines["0"]!.sshHost, "build-a");
  assert.equal(machines["1"]!.sshHost, "build-b");
  const providers = resourcesOf("pulumi:providers:docker", "farm-");
  assert.deepEqual(
    providers.map((p) => [p.name, p.inputs.host]).sort(),
    [["farm-a", "ssh://ops@build-a"], ["farm-b", "ssh://ops@build-b"]],
  );
  assert.deepEqual(JSON.parse(providers.find((p) => p.name === "farm-a")!.inputs.sshOpts), ["-o", "StrictHostKeyChecking=no"]);
  assert.equal(resourcesOf(NETWORK, "farm-").length, 0);
  const [first] = resourcesOf(CONTAINER, "farm-0");
  assert.deepEqual(first!.inputs.networksAdvanced, []);
});

test("a group validates every machine with the runtime's rules", () => {
  assert.throws(
    () => new DevMachineGroup("broken", { template: { sshKeys: [KEY] }, machines: [{ name: "ok" }, { name: "bad", memory: "64M" }] }),
    /DevMachine "broken-bad" has an invalid configuration:\n  memory: MEMORY="64M" must be at least 128 MiB/,
  );
});

test("groupContainerSpecs (what the conformance test runs) describes exactly the containers the component creates", async () => {
  const args = {
    template: { memory: "1G", sshKeys: [KEY], accel: "tcg" as const },
    machines: [{ name: "a", sshPort: 2301 }, { name: "b", memory: "2G" }],
    hosts: [{ name: "one", host: "unix:///run/one.sock" }, { name: "two", host: "ssh://me@two" }],
  };
  const group = new DevMachineGroup("same", args);
  await value(group.sshConfig);
  for (const { machine, spec } of groupContainerSpecs("same", args)) {
    const [container] = resourcesOf(CONTAINER, `${machine.fullName}-container`);
    const inputs = container!.inputs;
    assert.equal(inputs.name, spec.name);
    assert.deepEqual(inputs.envs, envList(spec.env));
    assert.deepEqual(inputs.networksAdvanced, spec.networks);
    assert.deepEqual(Object.fromEntries(inputs.labels.map((l: any) => [l.label, l.value])), spec.labels);
    assert.deepEqual(inputs.ports.map((p: any) => p.internal), spec.ports.map((p) => p.containerPort));
  }
  const machines = await value(group.machines);
  assert.equal(machines.b!.sshHost, "two");
  assert.equal(machines.a!.sshHost, "127.0.0.1");
});

test("groupMachineSettings: the group's network and the host's SSH address, unless the machine sets its own", () => {
  const args = {
    template: { sshKeys: [KEY] },
    machines: [{ name: "own", dockerNetwork: "lan", sshHost: "jump.example" }, { name: "given" }],
    hosts: [{ host: "ssh://me@one" }, { host: "ssh://me@two", sshHost: "two.example" }],
  };
  const [own, given] = placeMachines("merge", args, hostNames(args.hosts));
  assert.deepEqual(groupMachineSettings(args, own!, "merge"), { sshKeys: [KEY], dockerNetwork: "lan", sshHost: "jump.example" });
  assert.deepEqual(groupMachineSettings(args, given!, "merge"), { sshKeys: [KEY], dockerNetwork: "merge", sshHost: "two.example" });
  assert.deepEqual(groupMachineSettings({ template: { sshKeys: [KEY] } }, given!, undefined), { sshKeys: [KEY] }, "no private network, no hosts: nothing added");
});

/** A user whose serialization (into USERS_FILE, once per description built) is counted. */
function countedUser(counter: { builds: number }) {
  return { name: "ann", sshKeys: [KEY], toJSON: () => (counter.builds++, { name: "ann", sshKeys: [KEY] }) } as { name: string; sshKeys: string[] };
}

test("each machine's description is built once, before anything is created, and the containers wait for the group's network", async () => {
  for (const privateNetwork of [true, false]) {
    const counter = { builds: 0 };
    const dependsOn: Record<string, pulumi.Resource[]> = {};
    const group = new DevMachineGroup(
      `once-${privateNetwork}`,
      { count: 2, privateNetwork, template: { users: [countedUser(counter)] } },
      {
        transformations: [
          ({ type, name, opts }) => {
            // DevMachine passes its container a plain list of resources.
            if (type === CONTAINER) dependsOn[name] = opts.dependsOn as pulumi.Resource[];
            return undefined;
          },
        ],
      },
    );
    await value(group.sshConfig);
    assert.equal(counter.builds, 2, `one description per machine (privateNetwork: ${privateNetwork})`);
    for (const index of [0, 1]) {
      const urns = await Promise.all(dependsOn[`once-${privateNetwork}-${index}-container`]!.map((r) => value(r.urn)));
      assert.equal(urns.some((urn) => urn.endsWith(`::once-${privateNetwork}-net-local`)), privateNetwork, "the container waits for the network it joins");
    }
  }
  const counter = { builds: 0 };
  const single = new DevMachine("once-single", { users: [countedUser(counter)] });
  await value(single.sshCommand);
  assert.equal(counter.builds, 1, "a DevMachine with plain arguments builds its description once, too");

  // A bad machine stops the group before any provider, network or container exists.
  assert.throws(
    () => new DevMachineGroup("halfway", { template: { sshKeys: [KEY] }, hosts: [{ host: "ssh://me@one" }], machines: [{ name: "ok" }, { name: "bad", cpu: 0 }] }),
    /halfway-bad/,
  );
  assert.deepEqual(recorded.filter((r) => r.name.startsWith("halfway-")), [], "nothing half-done");
});
