pub mod account;
pub mod admin;
pub mod chat;
pub mod composer;
pub mod documents;
pub mod message;
pub mod sidebar;
pub mod uploads;
