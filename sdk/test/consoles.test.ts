/** `consoles` on DevMachine and groups: the console server's port, its token as a secret file, and `consoleUrl`. */
import assert from "node:assert/strict";
import { test } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { KEY, resourcesOf, SECRET_SIG, SECRET_VALUE, value } from "./mocks.js";
import { containerSpec, DevMachine, DevMachineConfigError, DevMachineGroup } from "../src/index.js";

const CONTAINER = "docker:index/container:Container";
const RANDOM = "random:index/randomPassword:RandomPassword";
const isSecret = (output: pulumi.Output<unknown>) => pulumi.isSecret(output);

test("consoles: CONSOLE_PORT 6080 published (on sshHostIp), the token in a secret file, consoleUrl a secret with the token", async () => {
  const dm = new DevMachine("cons-a", { user: "dev", sshKeys: [KEY], sshHostIp: "127.0.0.1", consoles: { port: 16080, token: pulumi.secret("given-token-0123456789") } });
  assert.equal(await value(dm.consoleUrl), "http://127.0.0.1:16080/?token=given-token-0123456789");
  assert.ok(await isSecret(dm.consoleUrl), "consoleUrl is a secret");
  const [container] = resourcesOf(CONTAINER, "cons-a");
  assert.ok(container);
  assert.ok(container.inputs.envs.includes("CONSOLE_PORT=6080"));
  assert.ok(container.inputs.envs.includes("CONSOLE_TOKEN_FILE=/run/secrets/devmachines/console-token"));
  assert.ok(!JSON.stringify(container.inputs.envs).includes("given-token"), "the token is not in the environment");
  assert.equal(container.inputs.uploads[SECRET_SIG], SECRET_VALUE);
  assert.deepEqual(container.inputs.uploads.value, [{ file: "/run/secrets/devmachines/console-token", content: "given-token-0123456789", permissions: "0400" }]);
  assert.deepEqual(container.inputs.ports.find((port: { internal: number }) => port.internal === 6080), { internal: 6080, protocol: "tcp", external: 16080, ip: "127.0.0.1" });
  assert.equal(resourcesOf(RANDOM, "cons-a").length, 0, "no token is generated when one is given");
});

test("consoles without a token: one random token per machine (@pulumi/random), Docker picks the host port", async () => {
  const dm = new DevMachine("cons-b", { user: "dev", sshKeys: [KEY], consoles: {} });
  const url = await value(dm.consoleUrl);
  const [password] = resourcesOf(RANDOM, "cons-b");
  assert.ok(password, "a RandomPassword is created");
  assert.equal(password.inputs.length, 32);
  assert.equal(password.inputs.special, false);
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9]{32}$/);
  const [container] = resourcesOf(CONTAINER, "cons-b");
  const upload = container!.inputs.uploads.value.find((file: { file: string }) => file.file.endsWith("console-token"));
  assert.equal(upload.content, new URL(url).searchParams.get("token"), "the container gets the token the URL holds");
  const published = container!.inputs.ports.find((port: { internal: number }) => port.internal === 6080);
  assert.ok(published && published.external === undefined, "Docker picks the host port");

  const plain = new DevMachine("cons-c", { user: "dev", sshKeys: [KEY] });
  assert.equal(await value(plain.consoleUrl), "", "no consoles, no address");
  assert.ok(!(await value(plain.spec)).env.CONSOLE_PORT);
});

test("a group gives every machine its own console token and lists their addresses", async () => {
  const group = new DevMachineGroup("cg", { count: 2, template: { user: "dev", sshKeys: [KEY], consoles: {} } });
  const urls = await value(group.consoleUrls);
  assert.equal(resourcesOf(RANDOM, "cg-").length, 2);
  assert.deepEqual(Object.keys(urls).sort(), ["0", "1"]);
  assert.notEqual(new URL(urls["0"]!).searchParams.get("token"), new URL(urls["1"]!).searchParams.get("token"));
  assert.ok(await isSecret(group.consoleUrls));
});

test("bad consoles settings fail with the argument named", () => {
  assert.throws(() => containerSpec("x", { user: "dev", sshKeys: [KEY], consoles: { token: "short" } }), (error: unknown) => {
    assert.ok(error instanceof DevMachineConfigError);
    assert.match(error.message, /consoles: CONSOLE_TOKEN_FILE must be at least 16 characters/);
    assert.doesNotMatch(error.message, /short/);
    return true;
  });
  assert.throws(() => containerSpec("x", { user: "dev", sshKeys: [KEY], network: "BRIDGE", consoles: {} }), /consoles need network NAT/);
  assert.throws(() => containerSpec("x", { user: "dev", sshKeys: [KEY], consoles: { port: 70000 } }), /consoles\.port="70000" must be a port number/);
  assert.throws(() => containerSpec("x", { user: "dev", sshKeys: [KEY], ports: [{ guestPort: 6080 }], consoles: {} }), /consoles: CONSOLE_PORT="6080" is container port tcp\/6080/);
});
