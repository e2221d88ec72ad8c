//! Placeholder replaced by the mysql poller.

use super::{DbError, DbTarget, Secret};
use crate::collectors::Samples;

pub async fn poll(_t: &DbTarget, _password: Option<&Secret>, _out: &mut Samples) -> Result<(), DbError> {
    Err(DbError::Protocol("mysql polling is not built yet".into()))
}
