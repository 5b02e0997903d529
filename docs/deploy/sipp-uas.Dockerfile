# The demo pool member of docker-compose.yml: SIPp (Debian's sip-tester) answering as a UAS.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends sip-tester \
 && rm -rf /var/lib/apt/lists/*
USER nobody
EXPOSE 5060/udp
ENTRYPOINT ["sipp", "-sn", "uas", "-i", "0.0.0.0", "-p", "5060", "-nostdin", "-bg"]
