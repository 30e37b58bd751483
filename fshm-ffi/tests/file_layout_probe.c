/*
 * file_layout_probe.c — what glibc's headers and stdio say about every `FILE`
 * field and flag that fshm-ffi/src/file.rs uses, printed as "name value" lines
 * for tests/file_layout.rs to compare with the Rust side.
 *
 * Offsets and sizes come from the public struct _IO_FILE. The flag bits are not
 * in the public headers, so their meaning is observed on a real FILE (a tmpfile):
 * its flags word before and after each state change.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>

#define FIELD(f)                                                                 \
    printf("offset %s %zu\n", #f, offsetof(struct _IO_FILE, f));                \
    printf("size %s %zu\n", #f, sizeof(((struct _IO_FILE *)0)->f))

int main(void)
{
    FILE *f;
    FIELD(_flags);
    FIELD(_IO_read_ptr);
    FIELD(_IO_read_end);
    FIELD(_IO_read_base);
    FIELD(_IO_write_base);
    FIELD(_IO_write_ptr);
    FIELD(_IO_write_end);
    FIELD(_IO_buf_base);
    FIELD(_IO_buf_end);
    FIELD(_fileno);
    FIELD(_offset);
    printf("size FILE %zu\n", sizeof(FILE));

    /* Flags: buffered and reading, then putting, then in the backup area (an
     * ungetc of another byte than the one read), then unbuffered. */
    f = tmpfile();
    if (f == NULL || fputs("ab", f) == EOF || fflush(f) != 0 || fseek(f, 0, SEEK_SET) != 0)
        return 1;
    if (fgetc(f) != 'a')
        return 1;
    printf("flags reading %d\n", f->_flags);
    if (fseek(f, 0, SEEK_CUR) != 0 || fputc('c', f) != 'c')
        return 1;
    printf("flags putting %d\n", f->_flags);
    if (fseek(f, 0, SEEK_SET) != 0 || fgetc(f) != 'a' || ungetc('z', f) != 'z')
        return 1;
    printf("flags backup %d\n", f->_flags);
    if (fclose(f) != 0)
        return 1;
    f = tmpfile();
    if (f == NULL)
        return 1;
    printf("flags buffered %d\n", f->_flags);
    if (setvbuf(f, NULL, _IONBF, 0) != 0)
        return 1;
    printf("flags unbuffered %d\n", f->_flags);
    return fclose(f) == 0 ? 0 : 1;
}
