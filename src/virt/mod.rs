//! libvirt: the network's bootp patch and pxelab's domains (not built yet:
//! see issue "libvirt: patch a network's DHCP bootp safely"). Every libvirt
//! call will go through one blocking boundary here.
