//! PWD, CWD, CDUP: the working directory.

use super::super::{Handled, Reply, Session};
use super::{quote_path, Need};
use crate::reply::Code;

impl Session {
    pub(in crate::session) fn pwd(&self) -> Handled {
        let text = format!("{} is the current directory", quote_path(&self.state.cwd));
        Ok(Reply::new(Code::PathName, text).into())
    }

    pub(in crate::session) async fn cwd(&mut self, arg: &str) -> Handled {
        let (user, path) = self.authorize(arg, Need::Read).await?;
        let meta = user.storage.metadata(&path).await?;
        if !meta.is_dir() {
            return Err(Reply::new(Code::FileUnavailable, "Not a directory"));
        }
        self.state.cwd = path;
        let text = format!("Directory changed to {}", self.state.cwd);
        Ok(Reply::new(Code::FileActionOk, text).into())
    }
}
