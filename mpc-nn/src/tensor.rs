//! [`Tensor`]: a shape and contiguous row-major data.

use alloc::vec::Vec;

use mpc_core::Error;

/// A shape and contiguous row-major data: a backend's vector (`B::Vector`), plain `Vec<f64>`, ...
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor<V> {
    shape: Vec<usize>,
    data: V,
}

impl<V> Tensor<V> {
    /// Wraps `data` of `shape`, checking that the element counts agree.
    pub fn new<E>(shape: &[usize], data: V) -> Result<Self, Error>
    where
        V: core::ops::Deref<Target = [E]>,
    {
        if shape.iter().product::<usize>() != data.len() {
            return Err(Error::ShapeMismatch);
        }
        Ok(Self { shape: shape.to_vec(), data })
    }

    /// A matrix of `rows × cols`.
    pub fn matrix<E>(rows: usize, cols: usize, data: V) -> Result<Self, Error>
    where
        V: core::ops::Deref<Target = [E]>,
    {
        Self::new(&[rows, cols], data)
    }

    /// The dimensions, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Rows of a matrix (the outermost dimension).
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(0)
    }

    /// Columns of a matrix (the product of the inner dimensions).
    pub fn cols(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// The data.
    pub fn data(&self) -> &V {
        &self.data
    }

    /// Unwraps the data.
    pub fn into_data(self) -> V {
        self.data
    }
}
