# pchat-endpoint container image: built with the README's own commands (npm ci, npm run build), run
# as the unprivileged "node" user with only production dependencies and the compiled JavaScript.

FROM node:20-bookworm-slim AS build
# npm ci builds the UDP binding (native/) with node-gyp: it needs a compiler and python3.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY native/udp.c native/binding.gyp native/build.mjs ./native/
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
# V8's young generation capped at 2 × 8 MB, as `npm start` runs the service (README, Deployment).
ENV NODE_ENV=production \
    NODE_OPTIONS=--max-semi-space-size=8 \
    PCHAT_CONFIG_DIR=/etc/pchat-endpoint
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/native/build/Release/pchat_udp.node ./native/build/Release/pchat_udp.node
# The shipped example listens on loopback only; the image's default config listens on every
# interface. Mount a folder over /etc/pchat-endpoint (read-write, for the CLI and live reload).
COPY docs/deploy/config /etc/pchat-endpoint
RUN chown -R node:node /etc/pchat-endpoint
USER node
EXPOSE 5060/udp 5060/tcp 9090/tcp
HEALTHCHECK --interval=10s --timeout=3s CMD ["node", "-e", "fetch('http://127.0.0.1:9090/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# `npm start` runs the same command after building: node --max-semi-space-size=8 dist/cli/main.js serve
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["serve"]
