/**
 * The plugin's schema, regenerated with the analyzer that ships in @pulumi/pulumi
 * and compared with provider/schema.json: when the components' code changes, this
 * fails until the stored schema is regenerated (`npm run schema -w provider`).
 */
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { test } from "node:test";
import { ComponentProvider } from "@pulumi/pulumi/provider/experimental/provider.js";
import { providerOptions } from "../src/options.js";

const schemaPath = new URL("../schema.json", import.meta.url);

export async function generatedSchema(): Promise<Record<string, any>> {
  return JSON.parse(await new ComponentProvider(providerOptions()).getSchema());
}

test("the stored schema matches what the analyzer infers from the sdk's source", async () => {
  const schema = await generatedSchema();
  const text = `${JSON.stringify(schema, null, 2)}\n`;
  if (process.env.DEVMACHINES_UPDATE_SCHEMA === "1") await writeFile(schemaPath, text);
  const stored = await readFile(schemaPath, "utf8").catch(() => "{}");
  assert.deepEqual(JSON.parse(stored), schema, "provider/schema.json is stale: run `npm run schema -w provider` and commit it");
});

test("the schema exposes both components with documented inputs and outputs", async () => {
  const schema = await generatedSchema();
  const machine = schema.resources["devmachines:index:DevMachine"];
  const group = schema.resources["devmachines:index:DevMachineGroup"];
  assert.ok(machine?.isComponent && group?.isComponent);
  for (const input of ["cpu", "memory", "storage", "user", "password", "sshKeys", "users", "network", "ports", "image", "persistent", "keepDisk", "userData", "hostname", "vnc", "accel", "labels", "restart", "dockerNetwork"]) {
    assert.ok(machine.inputProperties[input], `DevMachine input ${input}`);
  }
  for (const output of ["containerId", "containerName", "ipAddress", "sshHost", "sshPort", "sshCommand", "volumeName", "consoleUrl"]) {
    assert.ok(machine.properties[output], `DevMachine output ${output}`);
  }
  for (const output of ["machines", "sshConfig", "ansibleInventory", "consoleUrls"]) assert.ok(group.properties[output], `DevMachineGroup output ${output}`);
  assert.deepEqual(
    schema.types["devmachines:index:NetworkMode"].enum.map((member: { value: string }) => member.value),
    ["NAT", "BRIDGE"],
  );
  // Every input and type property carries its TSDoc into every language's SDK.
  for (const [name, resource] of Object.entries<any>(schema.resources)) {
    for (const [key, property] of Object.entries<any>({ ...resource.inputProperties, ...resource.properties })) {
      assert.ok(property.description, `${name}.${key} has no description`);
    }
  }
  for (const [name, type] of Object.entries<any>(schema.types)) {
    for (const [key, property] of Object.entries<any>(type.properties ?? {})) {
      assert.ok(property.description, `${name}.${key} has no description`);
    }
  }
});
