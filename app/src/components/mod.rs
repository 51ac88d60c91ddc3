pub mod chat;
pub mod composer;
pub mod message;
pub mod sidebar;
