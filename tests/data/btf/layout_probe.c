/* Host program: prints "name offset size" for every non-bitfield leaf of struct test_event and
 * a hex dump of a record with known bitfield values, as an independent check of layout.py. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "record.h"

#define F(path) printf("%s %zu %zu\n", #path, offsetof(struct test_event, path), \
		       sizeof(((struct test_event *)0)->path))

int main(void)
{
	struct test_event e;
	size_t i;

	F(u8v); F(s16v); F(u32v); F(s64v); F(flag); F(name); F(color); F(mntns_id);
	F(proc.comm); F(proc.pid); F(proc.creds.uid); F(proc.creds.gid);
	F(v4); F(v6); F(inner_a); F(arr); F(grid); F(many); F(f); F(d); F(ptr);
	F(named_u.whole); F(named_u.halves); F(raw_text); F(stext); F(alias_name); F(cv_u32);
	F(wide);
	printf("sizeof %zu\n", sizeof(struct test_event));
	memset(&e, 0, sizeof(e));
	e.bf_a = 5;
	e.bf_b = 17;
	e.bf_c = -42;
	e.bf_d = 1;
	printf("bytes ");
	for (i = 0; i < sizeof(e); i++)
		printf("%02x", ((unsigned char *)&e)[i]);
	printf("\n");
	return 0;
}
