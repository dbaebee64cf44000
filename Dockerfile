# One image for every layerswarm role: agent, tracker, seeder and the `configure containerd` init step.
#
#   docker build -t layerswarm:dev .                                       # FROM node:22-slim
#   docker build --build-arg BASE=registry.example.com/node:22-slim -t layerswarm:dev .
#   docker run --rm layerswarm:dev --version
#   docker run --rm --network host layerswarm:dev agent --origin https://registry.example.com
#
# The code is TypeScript that Node >= 22.18 runs directly (type stripping, no build step). Node refuses to strip types
# under node_modules, so the app lives in /app (not a global npm install). BASE must provide Node >= 22.18 as `node`
# on PATH and npm for the dependency stage (the official node:22-slim does). Few instructions on purpose: every one is
# a layer, and a daemon on the vfs storage driver copies the whole filesystem for each.
ARG BASE=node:22-slim

# --- production dependencies only, then the code (.dockerignore lets in only bin/, agent/, shared/, tracker/) --------
FROM ${BASE} AS build
COPY package.json package-lock.json /app/
RUN cd /app && npm ci --omit=dev --ignore-scripts --no-audit --no-fund && rm -rf /root/.npm /tmp/*
COPY . /app/

# --- runtime -------------------------------------------------------------------------------------------------------
FROM ${BASE}
COPY --from=build /app /app
# `layerswarm` on PATH; data dirs owned by the non-root user (a named volume mounted there starts with this ownership).
RUN ln -s /app/bin/layerswarm.mjs /usr/local/bin/layerswarm \
 && mkdir -p /var/lib/layerswarm /var/lib/layerswarm-seeder \
 && chown 10001:10001 /var/lib/layerswarm /var/lib/layerswarm-seeder
# Agent (registry 5050, peers 5051), tracker (5060), seeder (API 5070, peers 5071).
EXPOSE 5050 5051 5060 5070 5071
# Non-root by default. Roles that write host paths (the DaemonSet's `configure containerd` init container) run as
# root explicitly: see deploy/kubernetes.
USER 10001:10001
# ENTRYPOINT resets the base image's CMD: no arguments print the usage.
ENTRYPOINT ["layerswarm"]
