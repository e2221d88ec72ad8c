//! Placeholder replaced by the redis poller.

use super::{DbError, DbTarget, Secret};
use crate::collectors::Samples;

pub async fn poll(_t: &DbTarget, _password: Option<&Secret>, _out: &mut Samples) -> Result<(), DbError> {
    Err(DbError::Protocol("redis polling is not built yet".into()))
}
