# The image packaging/test installs rvs's .deb into: Debian 12 with systemd as PID 1, man-db
# (systemd-analyze verify resolves the unit's man: links), and what the network-namespace lab
# needs besides rvs (real servers, clients and tools). Nothing from the build tree but the .deb.
FROM rvs-base:bookworm
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      systemd systemd-sysv man-db iproute2 procps ethtool python3 nginx-light curl keepalived \
      haproxy tcpdump dnsdist bind9-dnsutils librte-net-pcap23 openssl prometheus \
 && rm -rf /var/lib/apt/lists/*
COPY rvs.deb /tmp/rvs.deb
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends /tmp/rvs.deb \
 && rm -rf /var/lib/apt/lists/* /tmp/rvs.deb
