// The default stack (../../Pulumi.yaml): one DevMachine on the local Docker Engine.
//   pulumi config set --path 'devmachines:sshKeys[0]' "$(cat ~/.ssh/id_ed25519.pub)"   (default: ~/.ssh/*.pub)
//   pulumi config set --secret devmachines:password ...                               (optional)
//   pulumi config set devmachines:sshPort 2222 / devmachines:name devmachine / devmachines:image ...  (optional)
import * as pulumi from "@pulumi/pulumi";
import { DEFAULT_MACHINE_NAME, DevMachine, defaultMachineSettings, localSshKeys } from "@devmachines/pulumi";

const config = new pulumi.Config("devmachines");
const sshKeys = config.getObject<string[]>("sshKeys") ?? localSshKeys();
const password = config.getSecret("password");

const machine = new DevMachine(config.get("name") ?? DEFAULT_MACHINE_NAME, {
  ...defaultMachineSettings(),
  ...(config.getNumber("sshPort") !== undefined && { sshPort: config.requireNumber("sshPort") }),
  ...(sshKeys.length > 0 && { sshKeys }),
  ...(password && { password }),
  ...(config.get("image") && { image: config.require("image") }),
});

export const containerName = machine.containerName;
export const sshCommand = machine.sshCommand;
export const volumeName = machine.volumeName;
