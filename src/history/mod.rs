//! The audit log, the room: `auditLog` and every record's `history`.
//! Entries are written by `audit`, in the transaction of the change they
//! describe.

pub mod api;
