// A lab of three machines on a private network (`lab`): they reach each other by name
// (web, db, client). Write the SSH config and the Ansible inventory out and use them:
//   pulumi stack output sshConfig >> ~/.ssh/config && ssh lab-web
//   pulumi stack output ansibleInventory > inventory.yaml && ansible -i inventory.yaml lab -m ping
// Spread it over several Docker hosts by adding `hosts: [{ host: "ssh://me@box-1" }, ...]`.
// Optional settings (defaults in brackets): name [lab], clientSshPort [2230],
// subnet [10.77.0.0/24], packages [true: nginx on web, postgresql on db], image.
import * as pulumi from "@pulumi/pulumi";
import { DevMachineGroup } from "@devmachines/pulumi";

const config = new pulumi.Config();
const packages = config.getBoolean("packages") ?? true;

const lab = new DevMachineGroup(config.get("name") ?? "lab", {
  template: {
    cpu: 1,
    memory: "1G",
    storage: "10G",
    sshKeys: [config.require("sshKey")],
    sshHostIp: "127.0.0.1",
    // The VMs take the containers' addresses, so the machines talk to each other directly.
    network: "BRIDGE",
    ...(config.get("image") && { image: config.require("image") }),
  },
  machines: [
    { name: "web", ...(packages && { userData: "packages: [nginx]" }) },
    { name: "db", memory: "2G", ...(packages && { userData: "packages: [postgresql]" }) },
    { name: "client", network: "NAT", sshPort: config.getNumber("clientSshPort") ?? 2230 },
  ],
  subnet: config.get("subnet") ?? "10.77.0.0/24",
});

export const machines = lab.machines;
export const sshConfig = lab.sshConfig;
export const ansibleInventory = lab.ansibleInventory;
