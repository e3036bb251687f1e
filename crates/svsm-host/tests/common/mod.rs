pub mod kbs;
