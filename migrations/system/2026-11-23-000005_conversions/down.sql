DROP FUNCTION convertible(text, text);
