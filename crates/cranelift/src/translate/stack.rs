//! The translator's two stacks: Wasm operands as SSA values, and the open
//! control constructs (see the parent module for the invariants).

use cranelift_codegen::ir;

/// The Wasm operand stack, one Cranelift value per operand.
#[derive(Default)]
pub(crate) struct ValueStack(Vec<ir::Value>);

impl ValueStack {
    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn push(&mut self, v: ir::Value) {
        self.0.push(v);
    }

    pub(crate) fn extend(&mut self, vs: &[ir::Value]) {
        self.0.extend_from_slice(vs);
    }

    pub(crate) fn pop(&mut self) -> Option<ir::Value> {
        self.0.pop()
    }

    /// The top `n` values, bottom first.
    pub(crate) fn peekn(&self, n: usize) -> Option<&[ir::Value]> {
        self.0.get(self.0.len().checked_sub(n)?..)
    }

    pub(crate) fn truncate(&mut self, len: usize) {
        self.0.truncate(len);
    }
}

/// What kind of construct a frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameKind {
    /// The function body: a branch to it returns.
    Function,
    Block,
    /// A loop: branches go back to `header` with the loop's parameters.
    Loop {
        header: ir::Block,
    },
    /// An `if`: `else_block` is where a false condition goes, until the
    /// `else` is translated (then `None`).
    If {
        else_block: Option<ir::Block>,
    },
}

/// One open `block`, `loop`, `if`, or the function body.
#[derive(Clone, Debug)]
pub(crate) struct ControlFrame {
    pub kind: FrameKind,
    /// The block after the construct's `end`, with one parameter per
    /// result.
    pub next: ir::Block,
    pub num_params: usize,
    pub num_results: usize,
    /// The value-stack height at entry, below the parameters.
    pub height: usize,
    /// Whether a branch (or the `if`'s false edge) reaches `next`.
    pub next_reached: bool,
}

impl ControlFrame {
    pub(crate) fn function(exit: ir::Block, num_results: usize) -> ControlFrame {
        ControlFrame {
            kind: FrameKind::Function,
            next: exit,
            num_params: 0,
            num_results,
            height: 0,
            next_reached: false,
        }
    }

    /// Where a branch to this frame goes, and how many values it carries.
    pub(crate) fn branch_target(&self) -> (ir::Block, usize) {
        match self.kind {
            FrameKind::Loop { header } => (header, self.num_params),
            _ => (self.next, self.num_results),
        }
    }

    pub(crate) fn is_loop(&self) -> bool {
        matches!(self.kind, FrameKind::Loop { .. })
    }
}
