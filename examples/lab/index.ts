// A lab of three machines on a private network (`lab`): they reach each other by name
// (web, db, client). Write the SSH config and the Ansible inventory out and use them:
//   pulumi stack output sshConfig >> ~/.ssh/config && ssh lab-web
//   pulumi stack output ansibleInventory > inventory.yaml && ansible -i inventory.yaml lab -m ping
// Optional settings (defaults in brackets): name [lab], clientSshPort [2230],
// subnet [10.77.0.0/24; empty: Docker picks], packages [true: nginx on web, postgresql on db],
// image, hosts [the local engine]: Docker hosts to spread the lab over, e.g.
//   pulumi config set --path 'hosts[0].host' unix:///var/run/docker.sock
//   pulumi config set --path 'hosts[1].host' ssh://me@box-1
import * as pulumi from "@pulumi/pulumi";
import { DevMachineGroup, type DockerHostArgs } from "@devmachines/pulumi";

const config = new pulumi.Config();
const packages = config.getBoolean("packages") ?? true;
const hosts = config.getObject<DockerHostArgs[]>("hosts");
// web and db share the first host, and so its private network: they reach each other by name.
// The client goes to the last host and reaches them over their published SSH ports.
const pin = (index: number) => (hosts?.length ? { host: String(index < 0 ? hosts.length - 1 : index) } : {});

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
    { name: "web", ...pin(0), ...(packages && { userData: "packages: [nginx]" }) },
    { name: "db", memory: "2G", ...pin(0), ...(packages && { userData: "packages: [postgresql]" }) },
    { name: "client", network: "NAT", sshPort: config.getNumber("clientSshPort") ?? 2230, ...pin(-1) },
  ],
  ...(hosts?.length && { hosts }),
  subnet: config.get("subnet") ?? "10.77.0.0/24",
});

export const machines = lab.machines;
export const sshConfig = lab.sshConfig;
export const ansibleInventory = lab.ansibleInventory;
