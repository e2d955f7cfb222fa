// One machine: 4 vCPU, 8 GiB, a persistent 40 GiB disk kept even when the stack is destroyed,
// a web port, extra packages through cloud-init, and the password as a Pulumi secret.
//   pulumi config set sshKey "$(cat ~/.ssh/id_ed25519.pub)"
//   pulumi config set --secret password ...
// Optional settings (defaults in brackets): name [workstation], cpu [4], memory [8G],
// storage [40G], sshPort [2222], webPort [8080], packages [git, build-essential, tmux],
// image [the DevMachines image], consolePort [none: no browser consoles; with a port, the
// serial and graphical consoles behind a random token: pulumi stack output --show-secrets consoleUrl].
import * as pulumi from "@pulumi/pulumi";
import { DevMachine } from "@devmachines/pulumi";

const config = new pulumi.Config();

const box = new DevMachine(config.get("name") ?? "workstation", {
  cpu: config.getNumber("cpu") ?? 4,
  memory: config.get("memory") ?? "8G",
  storage: config.get("storage") ?? "40G",
  user: "dev",
  sshKeys: [config.require("sshKey")],
  password: config.requireSecret("password"),
  sshPort: config.getNumber("sshPort") ?? 2222,
  ports: [{ guestPort: 8080, hostPort: config.getNumber("webPort") ?? 8080, hostIp: "127.0.0.1" }],
  keepDisk: true,
  userData: [
    `packages: [${config.get("packages") ?? "git, build-essential, tmux"}]`,
    "runcmd:",
    "  - [sh, -c, 'echo ready > /etc/motd']",
  ].join("\n"),
  labels: [{ label: "owner", value: pulumi.getStack() }],
  ...(config.get("image") && { image: config.require("image") }),
  ...(config.getNumber("consolePort") !== undefined && { consoles: { port: config.requireNumber("consolePort") } }),
});

export const sshCommand = box.sshCommand;
export const diskVolume = box.volumeName;
export const containerName = box.containerName;
export const consoleUrl = box.consoleUrl;
