//! Structured control flow: `block`, `loop`, `if`/`else`, `end`, the
//! branches, `return` and `unreachable`, and the skipping of dead code.

use super::stack::{ControlFrame, FrameKind};
use super::{invalid, traps, Tx, TxResult};
use cranelift_codegen::ir::{self, BlockArg, InstBuilder, JumpTableData};
use wasmparser::Operator as O;

fn block_args(vals: &[ir::Value]) -> Vec<BlockArg> {
    vals.iter().map(|v| BlockArg::Value(*v)).collect()
}

impl Tx<'_, '_> {
    /// An operator in dead code: only nesting matters (see the module docs
    /// of `translate`).
    pub(super) fn dead_operator(&mut self, op: &O<'_>) -> TxResult<()> {
        match op {
            O::Block { .. } | O::Loop { .. } | O::If { .. } => self.dead_depth += 1,
            O::Else if self.dead_depth == 0 => self.translate_else()?,
            O::End if self.dead_depth > 0 => self.dead_depth -= 1,
            O::End => self.translate_end()?,
            _ => {}
        }
        Ok(())
    }

    /// Translates `op` if it is a control operator.
    pub(super) fn control_operator(&mut self, op: &O<'_>) -> TxResult<bool> {
        match *op {
            O::Nop => {}
            O::Unreachable => self.trap(traps::UNREACHABLE),
            O::Block { blockty } => {
                let (params, results) = self.block_type(blockty)?;
                let next = self.block_with_params(&results);
                let height = self.height_below(params.len())?;
                self.control.push(ControlFrame {
                    kind: FrameKind::Block,
                    next,
                    num_params: params.len(),
                    num_results: results.len(),
                    height,
                    next_reached: false,
                });
            }
            O::Loop { blockty } => {
                let (params, results) = self.block_type(blockty)?;
                let header = self.block_with_params(&params);
                let next = self.block_with_params(&results);
                let args = block_args(self.peekn(params.len())?);
                self.b.ins().jump(header, &args);
                let height = self.height_below(params.len())?;
                self.stack.truncate(height);
                self.b.switch_to_block(header);
                let vals = self.b.block_params(header).to_vec();
                self.stack.extend(&vals);
                self.control.push(ControlFrame {
                    kind: FrameKind::Loop { header },
                    next,
                    num_params: params.len(),
                    num_results: results.len(),
                    height,
                    next_reached: false,
                });
                self.loop_header_checks();
            }
            O::If { blockty } => {
                let cond = self.pop()?;
                let (params, results) = self.block_type(blockty)?;
                let then_block = self.block_with_params(&params);
                let else_block = self.block_with_params(&params);
                let next = self.block_with_params(&results);
                let args = block_args(self.peekn(params.len())?);
                self.b
                    .ins()
                    .brif(cond, then_block, &args, else_block, &args);
                let height = self.height_below(params.len())?;
                self.stack.truncate(height);
                self.b.switch_to_block(then_block);
                self.b.seal_block(then_block);
                let vals = self.b.block_params(then_block).to_vec();
                self.stack.extend(&vals);
                self.control.push(ControlFrame {
                    kind: FrameKind::If {
                        else_block: Some(else_block),
                    },
                    next,
                    num_params: params.len(),
                    num_results: results.len(),
                    height,
                    next_reached: false,
                });
            }
            O::Else => self.translate_else()?,
            O::End => self.translate_end()?,
            O::Br { relative_depth } => {
                let i = self.frame_index(relative_depth)?;
                let (target, n) = self.control[i].branch_target();
                let args = block_args(self.peekn(n)?);
                self.b.ins().jump(target, &args);
                self.control[i].next_reached |= !self.control[i].is_loop();
                self.reachable = false;
            }
            O::BrIf { relative_depth } => {
                let cond = self.pop()?;
                let i = self.frame_index(relative_depth)?;
                let (target, n) = self.control[i].branch_target();
                let args = block_args(self.peekn(n)?);
                let cont = self.b.create_block();
                self.b.ins().brif(cond, target, &args, cont, &[]);
                self.control[i].next_reached |= !self.control[i].is_loop();
                self.b.switch_to_block(cont);
                self.b.seal_block(cont);
            }
            O::BrTable { ref targets } => {
                let index = self.pop()?;
                let mut depths = Vec::with_capacity(targets.len() as usize);
                for t in targets.targets() {
                    depths.push(t?);
                }
                let default = targets.default();
                let (_, n) = self.control[self.frame_index(default)?].branch_target();
                let args = block_args(self.peekn(n)?);
                let call = |tx: &mut Self, depth: u32| -> TxResult<ir::BlockCall> {
                    let i = tx.frame_index(depth)?;
                    let (target, m) = tx.control[i].branch_target();
                    if m != n {
                        return Err(invalid("br_table arity mismatch", tx.offset));
                    }
                    tx.control[i].next_reached |= !tx.control[i].is_loop();
                    Ok(tx.b.func.dfg.block_call(target, &args))
                };
                let default_call = call(self, default)?;
                let mut calls = Vec::with_capacity(depths.len());
                for d in depths {
                    calls.push(call(self, d)?);
                }
                let jt = self
                    .b
                    .create_jump_table(JumpTableData::new(default_call, &calls));
                self.b.ins().br_table(index, jt);
                self.reachable = false;
            }
            O::Return => self.translate_return()?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Emits the function's return with the operands on top of the stack.
    pub(super) fn translate_return(&mut self) -> TxResult<()> {
        let n = self.control[0].num_results;
        let vals = self.peekn(n)?.to_vec();
        self.fuel_flush();
        self.b.ins().return_(&vals);
        self.reachable = false;
        Ok(())
    }

    fn translate_else(&mut self) -> TxResult<()> {
        let frame = self
            .control
            .last()
            .cloned()
            .ok_or_else(|| invalid("else outside if", self.offset))?;
        let FrameKind::If {
            else_block: Some(else_block),
        } = frame.kind
        else {
            return Err(invalid("else outside if", self.offset));
        };
        if self.reachable {
            let args = block_args(self.peekn(frame.num_results)?);
            self.b.ins().jump(frame.next, &args);
        }
        let top = self.control.last_mut().expect("checked above");
        top.next_reached |= self.reachable;
        top.kind = FrameKind::If { else_block: None };
        self.stack.truncate(frame.height);
        self.b.switch_to_block(else_block);
        self.b.seal_block(else_block);
        let vals = self.b.block_params(else_block).to_vec();
        self.stack.extend(&vals);
        self.reachable = true;
        Ok(())
    }

    fn translate_end(&mut self) -> TxResult<()> {
        let mut frame = self
            .control
            .pop()
            .ok_or_else(|| invalid("end without a frame", self.offset))?;
        if self.reachable {
            let args = block_args(self.peekn(frame.num_results)?);
            self.b.ins().jump(frame.next, &args);
            frame.next_reached = true;
        }
        match frame.kind {
            FrameKind::If {
                else_block: Some(else_block),
            } => {
                // No `else`: the false edge carries the parameters through
                // (validation made them the results).
                self.b.switch_to_block(else_block);
                self.b.seal_block(else_block);
                let args = block_args(self.b.block_params(else_block)).to_vec();
                self.b.ins().jump(frame.next, &args);
                frame.next_reached = true;
            }
            FrameKind::Loop { header } => self.b.seal_block(header),
            _ => {}
        }
        self.stack.truncate(frame.height);
        self.b.switch_to_block(frame.next);
        self.b.seal_block(frame.next);
        let vals = self.b.block_params(frame.next).to_vec();
        self.stack.extend(&vals);
        self.reachable = frame.next_reached;
        if self.control.is_empty() && self.reachable {
            self.fuel_flush();
            self.b.ins().return_(&vals);
            self.reachable = false;
        }
        Ok(())
    }

    fn block_with_params(&mut self, tys: &[ir::Type]) -> ir::Block {
        let block = self.b.create_block();
        for t in tys {
            self.b.append_block_param(block, *t);
        }
        block
    }

    fn height_below(&self, n: usize) -> TxResult<usize> {
        self.stack
            .len()
            .checked_sub(n)
            .ok_or_else(|| invalid("operand stack underflow", self.offset))
    }

    fn frame_index(&self, depth: u32) -> TxResult<usize> {
        (self.control.len())
            .checked_sub(1 + depth as usize)
            .ok_or_else(|| invalid("branch depth out of range", self.offset))
    }
}
