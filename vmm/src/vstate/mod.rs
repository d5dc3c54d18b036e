//! KVM state: the VM ([`vm`]), its vCPUs ([`vcpu`]), the MSI routes and
//! ioeventfds of its PCI devices ([`msi`]), and how a VM ends ([`exit`]),
//! with the vCPU state dumped when it ends badly ([`vcpu_state`]).

pub mod exit;
pub mod msi;
pub mod vcpu;
pub mod vcpu_state;
pub mod vm;
