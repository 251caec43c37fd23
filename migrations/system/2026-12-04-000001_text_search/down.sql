DROP FUNCTION domain_of(text);
DROP FUNCTION phone_digits(text);
DROP FUNCTION normalized_email(text);
DROP FUNCTION normalized_text(text);
DROP FUNCTION search_vector(text, "char");
DROP FUNCTION search_text(text);
