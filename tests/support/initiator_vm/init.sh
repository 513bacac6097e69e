#!/bin/busybox sh
# PID 1 of the initiator VM (in its initramfs). A fixed script: every value it needs comes
# from files in the initramfs (modules.order), none is pasted into it.
#
# The guest's root is the host's own / (9p, read-only) under an overlay with a tmpfs upper
# layer; the guest's /etc/iscsi is a writable host folder (9p), so the node database is
# the host's to read and survives power-off. Then the agent (guest_agent.py) serves the
# host over virtio-serial; when it ends, the VM powers off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r module; do
    insmod "/lib/modules/$module" || echo "initiator-vm: insmod $module failed"
done < /modules.order

mkdir -p /host /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,ro,cache=loose hostroot /host
mount -t tmpfs -o size=256m tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work overlay /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 iscsietc /newroot/etc/iscsi
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
mount -t configfs configfs /newroot/sys/kernel/config
mount -t tmpfs -o mode=0755 tmpfs /newroot/run
mkdir -p /newroot/run/lock /newroot/run/initiator-vm
cp /vm/guest_agent.py /vm/lio.py /newroot/run/initiator-vm/
ip link set lo up

read -r uptime idle < /proc/uptime
echo "initiator-vm: starting the agent at $uptime s"
chroot /newroot /usr/bin/python3 -S /run/initiator-vm/guest_agent.py
echo "initiator-vm: the agent exited ($?), powering off"
sync
poweroff -f
