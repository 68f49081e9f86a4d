# The action's image: one static (musl) binary on an empty base, so the runner pulls a few MB
# and the step starts in milliseconds. scripts/build-image stages target/image-root/ARCH first
# (amd64, arm64: one directory per architecture, so that one buildx run can build both into one
# multi-arch image without emulation, since nothing here runs a command):
#   /usr/local/bin/deploy-coordinator        the binary (main step and operator CLI)
#   /usr/local/bin/deploy-coordinator-post   symlink to it: action.yml's post-entrypoint, since
#                                            post-entrypoint takes one path and no arguments
#   /etc/ssl/certs/ca-certificates.crt       TLS roots for AWS, GitHub and Slack
# The runner wants root (no USER) and sets its own --workdir (no WORKDIR).
FROM scratch

# Set by buildx (and by scripts/build-image) from --platform.
ARG TARGETARCH
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/deploy-coordinator/deploy-coordinator

LABEL org.opencontainers.image.title="deploy-coordinator" \
      org.opencontainers.image.description="Serialises CloudFormation deployments from GitHub Actions: DynamoDB lock with a FIFO queue, change-set deploy, live monitoring, Slack card" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"

COPY target/image-root/${TARGETARCH}/ /

ENTRYPOINT ["/usr/local/bin/deploy-coordinator"]
