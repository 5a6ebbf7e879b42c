//! PWD, CWD, CDUP: the working directory.

use super::super::state::State;
use super::super::Handled;
use super::{quote_path, Target};
use crate::reply::{Code, Reply};

pub(in crate::session) fn pwd(state: &State) -> Handled {
    let text = format!("{} is the current directory", quote_path(&state.cwd));
    Ok(Reply::new(Code::PathName, text).into())
}

pub(in crate::session) async fn cwd(state: &mut State, target: Target) -> Handled {
    let Target { user, path, .. } = target;
    let meta = user.storage.metadata(&path).await?;
    if !meta.is_dir() {
        return Err(Reply::new(Code::FileUnavailable, "Not a directory"));
    }
    state.cwd = path;
    let text = format!("Directory changed to {}", state.cwd);
    Ok(Reply::new(Code::FileActionOk, text).into())
}
