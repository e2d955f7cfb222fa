/**
 * examples/yaml/Pulumi.yaml checked against the plugin's schema: every resource
 * type exists, every property is an input of the right type (enums included),
 * required inputs are there, and every `${resource.output}` is a real output.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { parse } from "yaml";

const root = new URL("../../", import.meta.url);
type Schema = { resources: Record<string, any>; types: Record<string, any> };

function resolveType(schema: Schema, ref: string) {
  const token = decodeURIComponent(ref.replace(/^#\/types\//, ""));
  const type = schema.types[token];
  assert.ok(type, `unknown type ${ref}`);
  return type;
}

/**
 * Checks a YAML value against a schema property; interpolations (`${...}`) stand for any value
 * of the type, except that a secret (a config value declared `secret: true`, in `secrets`) cannot
 * go where the schema wants a plain value: such a property cannot hold a secret.
 */
function check(schema: Schema, property: any, value: unknown, where: string, secrets: ReadonlySet<string> = new Set()): void {
  if (typeof value === "string" && /^\$\{[^}]+\}$/.test(value)) {
    const name = value.slice(2, -1).trim();
    assert.ok(!(property.plain && secrets.has(name)), `${where} is plain in the schema: it cannot take the secret \${${name}}`);
    return;
  }
  if (property.$ref) {
    const type = resolveType(schema, property.$ref);
    if (type.enum) {
      const allowed = type.enum.map((member: { value: unknown }) => member.value);
      assert.ok(allowed.includes(value), `${where}: ${JSON.stringify(value)} is not one of ${allowed.join(", ")}`);
      return;
    }
    checkObject(schema, type.properties, value, where, secrets);
    return;
  }
  switch (property.type) {
    case "string":
      assert.equal(typeof value, "string", `${where} must be a string`);
      return;
    case "number":
      assert.equal(typeof value, "number", `${where} must be a number`);
      return;
    case "boolean":
      assert.equal(typeof value, "boolean", `${where} must be a boolean`);
      return;
    case "array":
      assert.ok(Array.isArray(value), `${where} must be a list`);
      (value as unknown[]).forEach((item, index) => check(schema, property.items, item, `${where}[${index}]`, secrets));
      return;
    case "object":
      assert.ok(value && typeof value === "object", `${where} must be a map`);
      for (const [key, item] of Object.entries(value as object)) check(schema, property.additionalProperties, item, `${where}.${key}`, secrets);
      return;
    default:
      assert.fail(`${where}: schema property without a known type: ${JSON.stringify(property)}`);
  }
}

function checkObject(schema: Schema, properties: Record<string, any>, value: unknown, where: string, secrets: ReadonlySet<string> = new Set()): void {
  assert.ok(value && typeof value === "object" && !Array.isArray(value), `${where} must be a map`);
  for (const [key, item] of Object.entries(value as object)) {
    assert.ok(properties[key], `${where}.${key} is not a property (known: ${Object.keys(properties).join(", ")})`);
    check(schema, properties[key], item, `${where}.${key}`, secrets);
  }
  for (const [key, property] of Object.entries(properties)) {
    if (!property.optional) assert.ok(key in (value as object), `${where}.${key} is required`);
  }
}

test("examples/yaml uses the plugin's components exactly as its schema defines them", async () => {
  const schema: Schema = JSON.parse(await readFile(new URL("provider/schema.json", root), "utf8"));
  const program = parse(await readFile(new URL("examples/yaml/Pulumi.yaml", root), "utf8"));
  assert.equal(program.runtime, "yaml");
  assert.equal(program.packages.devmachines, "../../provider", "the program loads the plugin from this repository");

  const secrets = new Set(Object.entries<any>(program.config ?? {}).filter(([, c]) => c?.secret === true).map(([name]) => name));
  assert.ok(secrets.size > 0, "the example passes a secret (a password) through the plugin");
  const typeOf: Record<string, string> = {};
  for (const [name, resource] of Object.entries<any>(program.resources)) {
    // YAML accepts `pkg:Type` for `pkg:index:Type`.
    const token = resource.type.split(":").length === 2 ? resource.type.replace(":", ":index:") : resource.type;
    if (!token.startsWith("devmachines:")) continue;
    const definition = schema.resources[token];
    assert.ok(definition, `${name}: ${resource.type} is not in the schema`);
    typeOf[name] = token;
    const inputs = Object.fromEntries(Object.entries<any>(definition.inputProperties).map(([key, p]) => [key, { ...p, optional: p.optional ?? !(definition.requiredInputs ?? []).includes(key) }]));
    checkObject(schema, inputs, resource.properties ?? {}, name, secrets);
  }
  assert.deepEqual(Object.values(typeOf).sort(), ["devmachines:index:DevMachine", "devmachines:index:DevMachineGroup"]);

  for (const [output, expression] of Object.entries<string>(program.outputs)) {
    for (const [, resource, property] of expression.matchAll(/\$\{(\w+)\.(\w+)/g)) {
      const token = typeOf[resource!];
      if (!token) continue;
      assert.ok(schema.resources[token].properties[property!], `output ${output}: ${resource}.${property} is not an output of ${token}`);
    }
  }
});

test("the checker refuses what the schema does not allow", async () => {
  const schema: Schema = JSON.parse(await readFile(new URL("provider/schema.json", root), "utf8"));
  const inputs = schema.resources["devmachines:index:DevMachine"].inputProperties;
  assert.throws(() => checkObject(schema, inputs, { memry: "1G" }, "box"), /box\.memry is not a property/);
  assert.throws(() => checkObject(schema, inputs, { network: "WIFI" }, "box"), /is not one of NAT, BRIDGE/);
  assert.throws(() => checkObject(schema, inputs, { cpu: "two" }, "box"), /box\.cpu must be a number/);
  assert.throws(() => checkObject(schema, inputs, { ports: [{ hostPort: 80 }] }, "box"), /box\.ports\[0\]\.guestPort is required/);
  const plainName = { ...inputs, user: { ...inputs.user, plain: true } };
  assert.throws(() => checkObject(schema, plainName, { user: "${secretUser}" }, "box", new Set(["secretUser"])), /box\.user is plain in the schema: it cannot take the secret/);
  // Nested fields are inputs, so a secret users[].password passes.
  checkObject(schema, inputs, { users: [{ name: "ops", password: "${pw}" }] }, "box", new Set(["pw"]));
});
