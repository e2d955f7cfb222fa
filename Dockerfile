# DevMachines runtime image: QEMU + the TypeScript launcher.  Tag: devmachines/runtime:latest
#
# Build:   npm run images -- --only runtime     (or: docker build -t devmachines/runtime:latest .)
# Offline: `FROM debian:trixie-slim` must exist locally; images/base/bootstrap.sh provides it.
# Works with the classic builder and with BuildKit: no `# syntax=` line, no BuildKit-only syntax.
#
# Paths inside the image:
#   /opt/devmachines/runtime/dist/main.js   the launcher (ENTRYPOINT), bundled into one file
#   /usr/local/bin/devmachines             `devmachines console`: attach to the guest's serial console
#   /opt/devmachines/runtime/templates/     cloud-init mustache templates (found relative to dist/)
#   /opt/devmachines/node_modules/          production dependencies only (ws; xterm.js and noVNC,
#                                           which the console server serves to browsers)
#   /images/base.qcow2                      read-only guest base disk (BASE_IMAGE default); machine
#                                           images such as devmachines/debian:13 put it there
#   /var/lib/devmachines                    disks folder (DISKS_DIR default): the copy-on-write
#                                           overlay and seed ISO live here; a VOLUME so they persist
#   /disks, /image, /socks                  the upstream project's folders: used when mounted
#                                           (disks, base image, sockets; see the README)
#
# The label tech.utkin.devmachines.runtime=true is the upstream project's: its Ansible
# inventory (devmachines.core) finds machines by it and their published 22/tcp.

# ---- build stage: compile the launcher, resolve production dependencies -------------------
FROM debian:trixie-slim AS build
# npm comes through corepack (shipped with Debian's nodejs) rather than Debian's npm package,
# which drags in ~400 node-* packages (babel, webpack, jest) and takes minutes to install.
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# Behind a TLS-intercepting proxy, pass its CA certificates (PEM text) so npm can reach the
# registry: --build-arg EXTRA_CA_CERTS="$(cat /usr/local/share/ca-certificates/*.crt)".
# Only this build stage trusts them; the final image never sees this argument.
ARG EXTRA_CA_CERTS=""
RUN if [ -n "$EXTRA_CA_CERTS" ]; then \
      printf '%s\n' "$EXTRA_CA_CERTS" > /usr/local/share/ca-certificates/build-extra.crt \
      && update-ca-certificates; \
    fi
ARG NPM_VERSION=10.9.4
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    COREPACK_ENABLE_DOWNLOAD_PROMPT=0 \
    npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
RUN corepack npm@${NPM_VERSION} --version
WORKDIR /src
# Manifests first so dependency layers stay cached while the sources change. npm ci checks
# the whole workspace lock, so every workspace's package.json must be present.
COPY package.json package-lock.json tsconfig.base.json ./
COPY runtime/package.json runtime/
COPY provider/package.json provider/
COPY sdk/package.json sdk/
# Production tree for the final stage: the runtime's dependencies only (not provider/sdk).
RUN mkdir /prod \
 && cp -r package.json package-lock.json runtime provider sdk /prod/ \
 && cd /prod \
 && corepack npm@${NPM_VERSION} ci --omit=dev --workspace=@devmachines/runtime --ignore-scripts \
 && rm -rf node_modules/@devmachines node_modules/.package-lock.json
# Build tree: the runtime's dependencies plus the root's devDependencies (typescript, @types/node).
RUN corepack npm@${NPM_VERSION} ci --workspace=@devmachines/runtime --include-workspace-root --ignore-scripts
COPY runtime/tsconfig.json runtime/
COPY runtime/src runtime/src
# The launcher's entry point becomes one bundled file: Node then reads one module instead of
# resolving and loading a few hundred (zod, execa and ours), which was most of the launcher's start
# (container start to QEMU exec) and a good part of its memory. The other dist/ modules stay for
# `devmachines console` (cli.js); require() is given to the CommonJS dependencies bundled in.
RUN ./node_modules/.bin/tsc -b runtime \
 && rm -f runtime/dist/*.tsbuildinfo \
 && test -f runtime/dist/main.js \
 && ./node_modules/.bin/esbuild runtime/dist/main.js --bundle --platform=node --format=esm --target=node20 \
      --banner:js="import { createRequire as __devmachinesRequire } from 'node:module'; const require = __devmachinesRequire(import.meta.url);" \
      --log-level=warning --outfile=runtime/dist/main.js --allow-overwrite

# ---- final stage: only what runs ------------------------------------------------------------
FROM debian:trixie-slim
# --no-install-recommends keeps qemu-system-x86 headless: no qemu-system-gui (GTK/SDL), spice,
# opengl or block-extra modules. VNC is built into QEMU itself. seabios and ipxe-qemu are hard
# dependencies (BIOS boot, NIC option ROMs). genisoimage writes the cloud-init NoCloud seed ISO.
# ARCH=aarch64 guests: qemu-system-arm (qemu-system-aarch64, the `virt` machine) and its UEFI
# firmware qemu-efi-aarch64 (/usr/share/AAVMF). Each AAVMF file is a 64 MiB flash image: only
# the firmware without secure boot (AAVMF_CODE.fd links to it) and the empty variable store are
# kept (-256 MB), and the 32-bit arm emulator goes too (the package ships it beside aarch64's).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      qemu-system-x86 qemu-system-arm qemu-efi-aarch64 qemu-utils genisoimage iproute2 ca-certificates nodejs \
 && rm -rf /var/lib/apt/lists/* \
 && rm -f /usr/share/AAVMF/AAVMF_CODE.secboot*.fd /usr/share/AAVMF/AAVMF_CODE.ms.fd /usr/share/AAVMF/AAVMF_CODE.snakeoil.fd \
          /usr/share/AAVMF/AAVMF_VARS.ms.fd /usr/share/AAVMF/AAVMF_VARS.snakeoil.fd /usr/bin/qemu-system-arm \
 && test -f "$(readlink -f /usr/share/AAVMF/AAVMF_CODE.fd)" && test -f /usr/share/AAVMF/AAVMF_VARS.fd \
 && mkdir -p /var/lib/devmachines /images

COPY --from=build /prod/node_modules /opt/devmachines/node_modules
COPY --from=build /src/runtime/package.json /opt/devmachines/runtime/package.json
COPY runtime/templates /opt/devmachines/runtime/templates
COPY --from=build /src/runtime/dist /opt/devmachines/runtime/dist
# `docker exec -it NAME devmachines console` attaches to the guest's serial console.
RUN printf '#!/bin/sh\nexec node /opt/devmachines/runtime/dist/cli.js "$@"\n' >/usr/local/bin/devmachines \
 && chmod 755 /usr/local/bin/devmachines
COPY runtime/bin/devmachines-health /usr/local/bin/devmachines-health

ENV NODE_ENV=production
LABEL org.opencontainers.image.title="DevMachines runtime" \
      org.opencontainers.image.description="QEMU virtual machine launcher: env -> cloud-init seed -> QEMU, supervised" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="debian:trixie-slim" \
      tech.utkin.devmachines.runtime="true"

# Defaults the launcher uses (not set here, so the launcher stays the one source of truth):
#   DISKS_DIR=/var/lib/devmachines   BASE_IMAGE=/images/base.qcow2
VOLUME /var/lib/devmachines
# SSH into the guest (NAT mode forwards container port 22 to the guest).
EXPOSE 22

# SIGTERM makes the launcher ask the guest to power off (ACPI over QMP) and wait GRACE_SECONDS
# (default 6) before quitting QEMU (up to 3 s more). Docker kills the container after its own
# stop timeout (default 10 s, compose's too), so that must exceed GRACE_SECONDS + 4: the default
# fits; a longer GRACE_SECONDS needs `docker run --stop-timeout`, `docker stop -t`, or compose
# `stop_grace_period` to match.
STOPSIGNAL SIGTERM

# `devmachines-health` prints the launcher's verdict, kept in /run/devmachines/health: healthy once
# the guest is ready (cloud-init finished, or a saved state resumed) and its SSH answers (the
# launcher re-checks SSH every 10 s). It is a shell reading one line, so it can run every second:
# a resumed machine turns healthy within a second of being ready (Docker 20.10 has no
# --start-interval). A guest under TCG needs 1-2 minutes to boot, more on a loaded machine,
# hence the long start period (failures during it do not count).
# The one health check: the Pulumi component and `runContainerSpec` inherit it, overriding nothing.
HEALTHCHECK --interval=1s --timeout=5s --start-period=600s --retries=3 \
  CMD ["/usr/local/bin/devmachines-health"]

ENTRYPOINT ["node", "/opt/devmachines/runtime/dist/main.js"]
