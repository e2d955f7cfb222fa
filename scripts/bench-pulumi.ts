/**
 * One Pulumi evaluation under mocks, for `npm run bench` (scripts/bench.ts runs it in a fresh
 * process per count, so memory figures do not mix): N DevMachines, or N bare components of one
 * docker.Container + docker.Volume (the baseline). Prints one JSON line: { ms, heapMiB, rssMiB }.
 *
 * Usage: node --import tsx scripts/bench-pulumi.ts COUNT devmachine|bare
 */
import * as pulumi from "@pulumi/pulumi";
import * as docker from "@pulumi/docker";

const count = Number(process.argv[2]);
const kind = process.argv[3];
pulumi.runtime.setMocks(
  {
    newResource: (args) => ({ id: `${args.name}-id`, state: { ...args.inputs, ports: [], networkDatas: [{ networkName: "bridge", ipAddress: "172.30.0.2" }] } }),
    call: (args) => args.inputs,
  },
  "bench",
  "bench",
  false,
);

class Bare extends pulumi.ComponentResource {
  constructor(name: string) {
    super("bench:index:Bare", name, {}, {});
    const volume = new docker.Volume(`${name}-disk`, { name: `${name}-disk` }, { parent: this });
    new docker.Container(name, { name, image: "devmachines/debian:13", volumes: [{ volumeName: volume.name, containerPath: "/var/lib/devmachines" }] }, { parent: this });
    this.registerOutputs({});
  }
}

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bench@devmachines";
const { DevMachine } = await import("../sdk/src/index.js");
const before = process.memoryUsage();
const started = performance.now();
const urns: pulumi.Output<string>[] = [];
for (let i = 0; i < count; i++) {
  const resource = kind === "bare" ? new Bare(`m${i}`) : new DevMachine(`m${i}`, { sshKeys: [KEY] });
  urns.push(resource.urn);
}
await Promise.all(urns.map((urn) => new Promise((resolve) => urn.apply(resolve))));
const ms = performance.now() - started;
const after = process.memoryUsage();
process.stdout.write(`${JSON.stringify({ ms, heapMiB: (after.heapUsed - before.heapUsed) / 2 ** 20, rssMiB: (after.rss - before.rss) / 2 ** 20 })}\n`);
