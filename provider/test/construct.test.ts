/**
 * The plugin's construct path (what a YAML, Python, Go or .NET program reaches through
 * the engine), run under Pulumi mocks: the provider builds the sdk's components from
 * a type token and returns their outputs.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { ComponentProvider } from "@pulumi/pulumi/provider/experimental/provider.js";
import { providerOptions } from "../src/options.js";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGgu9sEgnjUjo1EI1Wh0tQDeWEY9RkRfCkKOdbVH0K4c test@devmachines";
const created: { type: string; name: string; inputs: Record<string, any> }[] = [];
pulumi.runtime.setMocks(
  {
    newResource(args) {
      created.push({ type: args.type, name: args.name, inputs: args.inputs });
      const state = { ...args.inputs };
      if (args.type === "docker:index/container:Container") state.ports = args.inputs.ports.map((p: any) => ({ ...p, external: p.external ?? 40000 }));
      return { id: `${args.name}-id`, state };
    },
    call: (args) => args.inputs,
  },
  "devmachines",
  "plugin",
  false,
);

const value = <T>(output: pulumi.Output<T>) => new Promise<T>((resolve) => output.apply(resolve));

test("the plugin constructs a DevMachine and a DevMachineGroup from their type tokens", async () => {
  const provider = new ComponentProvider(providerOptions());
  const machine = await provider.construct("yaml-box", "devmachines:index:DevMachine", { sshKeys: [KEY], memory: "1G", sshPort: 2222 }, {});
  assert.equal(await value(machine.state.sshCommand as pulumi.Output<string>), "ssh -p 2222 dev@127.0.0.1");
  const container = created.find((r) => r.name === "yaml-box-container");
  assert.ok(container?.inputs.envs.includes("MEMORY=1G"));

  const group = await provider.construct("yaml-pair", "devmachines:index:DevMachineGroup", { count: 2, template: { sshKeys: [KEY] } }, {});
  const machines = await value(group.state.machines as pulumi.Output<Record<string, { containerName: string }>>);
  assert.deepEqual(Object.values(machines).map((m) => m.containerName), ["yaml-pair-0", "yaml-pair-1"]);
  assert.match(await value(group.state.sshConfig as pulumi.Output<string>), /Host yaml-pair-1\n/);
  await assert.rejects(provider.construct("x", "devmachines:index:Nope", {}, {}), /Component class not found for 'Nope'/);
});
