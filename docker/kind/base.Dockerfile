# kindest/base, as kind v0.27.0's images/base/Dockerfile makes it, where no image can be pulled:
# on the Debian 12 stand-in (debootstrap) instead of debian:bookworm-slim, with containerd and crictl
# built from their modules (kind builds them from their repositories), and Debian's runc and CNI
# plugins. kind's own files (the entrypoint, the systemd units, containerd's configuration) come
# from kind's module.
# devstack/cluster/nodeimage.py builds it (the build context: kind's images/base/ and the binaries).
ARG BASE
FROM ${BASE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

COPY --chmod=0755 files/usr/local/bin/* /usr/local/bin/

# kind's package list, then Debian's runc and CNI plugins in the places kind's units and
# configuration name (/usr/local/sbin, /opt/cni/bin). The systemd units kind removes or masks are
# removed and masked alike.
# Debian's versions: the image follows bookworm's security updates, as kind's base does.
# hadolint ignore=DL3008
RUN DEBIAN_FRONTEND=noninteractive clean-install \
      systemd \
      conntrack iptables nftables iproute2 ethtool util-linux mount kmod \
      libseccomp2 pigz fuse-overlayfs \
      nfs-common open-iscsi \
      bash ca-certificates curl jq procps \
      runc containernetworking-plugins \
    && find /lib/systemd/system/sysinit.target.wants/ -name "systemd-tmpfiles-setup.service" -delete \
    && rm -f /lib/systemd/system/multi-user.target.wants/* \
    && rm -f /etc/systemd/system/*.wants/* \
    && rm -f /lib/systemd/system/local-fs.target.wants/* \
    && rm -f /lib/systemd/system/sockets.target.wants/*udev* \
    && rm -f /lib/systemd/system/sockets.target.wants/*initctl* \
    && rm -f /lib/systemd/system/basic.target.wants/* \
    && echo "ReadKMsg=no" >> /etc/systemd/journald.conf \
    && ln -sf "$(command -v systemd)" /sbin/init \
    && ln -s /usr/sbin/runc /usr/local/sbin/runc \
    && mkdir -p /opt/cni/bin \
    && for plugin in host-local loopback ptp portmap bridge; do \
         ln -s "/usr/lib/cni/${plugin}" "/opt/cni/bin/${plugin}"; \
       done

COPY --chmod=0644 files/kind/ /kind/
COPY --chmod=0755 files/kind/bin/ /kind/bin/
COPY --chmod=0644 files/LICENSES/* /LICENSES/
COPY --chmod=0644 files/etc/* /etc/
COPY --chmod=0644 files/etc/containerd/* /etc/containerd/
COPY --chmod=0644 files/etc/default/* /etc/default/
COPY --chmod=0644 files/etc/sysctl.d/* /etc/sysctl.d/
COPY --chmod=0644 files/etc/systemd/system/* /etc/systemd/system/
COPY --chmod=0644 files/etc/systemd/system/kubelet.service.d/* /etc/systemd/system/kubelet.service.d/
COPY --chmod=0755 bin/crictl bin/containerd bin/ctr bin/containerd-shim-runc-v2 /usr/local/bin/

RUN chmod 755 /kind/bin \
    && systemctl enable kubelet.service \
    && systemctl enable containerd.service \
    && systemctl enable undo-mount-hacks.service \
    && systemctl mask systemd-binfmt.service \
    && mkdir -p /etc/kubernetes/manifests \
    && ctr oci spec \
        | jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
        | jq 'del(.process.rlimits)' \
        > /etc/containerd/cri-base.json \
    && containerd --version && runc --version && crictl --version

ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]
