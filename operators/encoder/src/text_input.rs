//! Text columns in: borrowing `&str` views from Utf8, LargeUtf8 and Utf8View arrays, with their nulls.

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_schema::DataType;

use crate::error::{EncoderError, Result};

/// Every row of a string array as `Option<&str>` (null → `None`), without copying the text.
pub fn text_rows(array: &dyn Array) -> Result<Vec<Option<&str>>> {
    Ok(match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().iter().collect(),
        DataType::LargeUtf8 => array.as_string::<i64>().iter().collect(),
        DataType::Utf8View => array.as_string_view().iter().collect(),
        other => return Err(EncoderError::NotText(other.to_string())),
    })
}

/// True for the Arrow types `text_rows` accepts.
pub fn is_text_type(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int32Array, LargeStringArray, StringArray, StringViewArray};

    #[test]
    fn all_string_types_read_with_nulls() {
        let expected = vec![Some("a"), None, Some("ñ")];
        assert_eq!(
            text_rows(&StringArray::from(expected.clone())).unwrap(),
            expected
        );
        assert_eq!(
            text_rows(&LargeStringArray::from(expected.clone())).unwrap(),
            expected
        );
        assert_eq!(
            text_rows(&StringViewArray::from(expected.clone())).unwrap(),
            expected
        );
    }

    #[test]
    fn non_text_is_an_error_naming_the_type() {
        let err = text_rows(&Int32Array::from(vec![1]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("Int32"), "{err}");
    }
}
