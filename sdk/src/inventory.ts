/**
 * What users paste elsewhere: an OpenSSH `ssh_config` snippet and an Ansible
 * inventory (YAML), so a group is reachable by name without an inventory plugin.
 */
import { stringify } from "yaml";

/** One machine of a group, as its outputs report it. */
export interface MachineInfo {
  /** The machine's name inside the group. */
  name: string;
  /** Docker container name (also the SSH alias and the Ansible host name). */
  containerName: string;
  /** Docker container id. */
  containerId: string;
  /** The Docker host the machine was placed on (its name in `hosts`). */
  host: string;
  /** The container's IP address on the group network. */
  ipAddress: string;
  /** Where to SSH to. */
  sshHost: string;
  /** The SSH port at `sshHost`. */
  sshPort: number;
  /** The user to log in as. */
  sshUser: string;
  /** A ready-to-paste SSH command. */
  sshCommand: string;
}

/** An `ssh_config` snippet: `ssh <containerName>` then just works (append it to ~/.ssh/config). */
export function sshConfig(machines: MachineInfo[]): string {
  return machines
    .map((machine) =>
      [
        `Host ${machine.containerName}`,
        `  HostName ${machine.sshHost}`,
        `  Port ${machine.sshPort}`,
        `  User ${machine.sshUser}`,
        // A recreated machine gets new host keys on the same address and port.
        `  StrictHostKeyChecking accept-new`,
        "",
      ].join("\n"),
    )
    .join("\n");
}

/** Ansible groups are identifiers. */
export function ansibleGroupName(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9_]/g, "_");
  return /^[0-9]/.test(cleaned) ? `_${cleaned}` : cleaned;
}

/**
 * A YAML inventory (`ansible-playbook -i inventory.yaml`): the group holds every
 * machine, and one child group per Docker host (`<group>_<host>`).
 */
export function ansibleInventory(group: string, machines: MachineInfo[]): string {
  const hostVars = (machine: MachineInfo) => ({
    ansible_host: machine.sshHost,
    ansible_port: machine.sshPort,
    ansible_user: machine.sshUser,
  });
  const byHost = new Map<string, MachineInfo[]>();
  for (const machine of machines) byHost.set(machine.host, [...(byHost.get(machine.host) ?? []), machine]);
  const groupName = ansibleGroupName(group);
  const inventory = {
    all: {
      children: {
        [groupName]: {
          hosts: Object.fromEntries(machines.map((machine) => [machine.containerName, hostVars(machine)])),
          vars: { ansible_ssh_common_args: "-o StrictHostKeyChecking=accept-new", ansible_become: true },
          children: Object.fromEntries(
            [...byHost].map(([host, members]) => [
              ansibleGroupName(`${group}_${host}`),
              { hosts: Object.fromEntries(members.map((machine) => [machine.containerName, {}])) },
            ]),
          ),
        },
      },
    },
  };
  return stringify(inventory);
}
